"""``manage.py duplicates_replay [FILE ...]``: replay the intake duplicate rule over message exports.

Reads the files (default: the bundled ``fj4_with_replies`` and ``fj3_with_votes``), takes the
messages in submission order as they would have arrived (a message id seen twice is the same
message, registered once), and applies exactly the rule of :mod:`casework.duplicates` with an
in-memory band index: an earlier message is a candidate while it was open (not yet replied, when
the file has the reply time) or submitted within ``RECENT_DAYS``. Prints how many messages would
have been flagged, by reason, and writes a random sample of flags (``--sample``, default 50) to
``--out`` for checking by hand. Writes nothing to the database.
"""

from collections import Counter, defaultdict
import csv
from datetime import timedelta
from pathlib import Path
import random

from django.conf import settings
from django.core.management.base import BaseCommand

from casework.duplicates import (
    MAX_CANDIDATES,
    MAX_FLAGS,
    PER_KEY,
    RECENT_DAYS,
    band_keys,
    jaccard,
    repeat_reason,
    shingles,
)
from casework.importing import MessageRow, read_message_rows

DATA = Path(settings.BASE_DIR) / "casework" / "data" / "messages"


class Command(BaseCommand):
    help = "Replay the intake duplicate rule over message files and sample the flags."

    def add_arguments(self, parser):
        parser.add_argument("files", nargs="*", default=[str(DATA / "fj4_with_replies.csv.gz"),
                                                         str(DATA / "fj3_with_votes.csv.gz")])
        parser.add_argument("--sample", type=int, default=50)
        parser.add_argument("--seed", type=int, default=12)
        parser.add_argument("--out", default="duplicates_sample.csv")

    def handle(self, *args, files, sample, seed, out, **options):
        rows: dict[str, MessageRow] = {}
        for f in files:
            for row in read_message_rows(f):
                if isinstance(row, MessageRow):
                    rows.setdefault(row.external_id or f"{f}:{row.row_number}", row)
        ordered = sorted(rows.values(), key=lambda r: r.submitted_at)
        index: dict[str, list[int]] = defaultdict(list)
        by_citizen: dict[str, list[int]] = defaultdict(list)
        sets = []
        flags = []
        for i, row in enumerate(ordered):
            sh = shingles(row.subject, row.body)
            sets.append(sh)
            keys = band_keys(sh) if sh else []
            # As the live rule (casework.duplicates): per key the PER_KEY most recent, ranked by keys shared,
            # the MAX_CANDIDATES best eligible ones, plus the same citizen's cases still open then.
            shared = Counter(j for k in keys for j in index[k][-PER_KEY:])
            ranked = sorted(shared.items(), key=lambda x: (x[1], x[0]), reverse=True)

            def eligible(j, row=row):
                other = ordered[j]
                open_then = other.replied_at is None or other.replied_at > row.submitted_at
                return open_then or row.submitted_at - other.submitted_at <= timedelta(days=RECENT_DAYS)

            chosen = [j for j, _n in ranked if eligible(j)][:MAX_CANDIDATES]
            if row.citizen_name:
                chosen += [j for j in by_citizen[row.citizen_name] if j not in chosen
                           and (ordered[j].replied_at is None or ordered[j].replied_at > row.submitted_at)]
            found = []
            for j in chosen:
                other = ordered[j]
                sim = jaccard(sh, sets[j])
                reason = repeat_reason(similarity=sim, same_citizen=bool(row.citizen_name)
                                       and row.citizen_name == other.citizen_name)
                if reason:
                    found.append((sim, j, reason))
            found.sort(key=lambda x: (-x[0], x[1]))
            for sim, j, reason in found[:MAX_FLAGS]:
                flags.append((i, j, sim, str(reason)))
            for k in keys:
                index[k].append(i)
            if row.citizen_name:
                by_citizen[row.citizen_name].append(i)
        flagged = {f[0] for f in flags}
        by_reason = defaultdict(set)
        for i, _j, _s, reason in flags:
            by_reason[reason].add(i)
        self.stdout.write(f"messages: {len(ordered)}")
        self.stdout.write(f"flagged messages: {len(flagged)} ({len(flags)} flags)")
        for reason, ids in sorted(by_reason.items()):
            self.stdout.write(f"  {reason}: {len(ids)}")
        first_flag = {}
        for f in flags:
            first_flag.setdefault(f[0], f)
        picked = random.Random(seed).sample(sorted(first_flag), min(sample, len(first_flag)))
        with open(out, "w", encoding="utf-8", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["new_id", "repeats_id", "similarity", "reason", "same_user", "new_subject", "new_body",
                        "old_subject", "old_body", "days_apart"])
            for i in picked:
                _i, j, sim, reason = first_flag[i]
                a, b = ordered[i], ordered[j]
                w.writerow([a.external_id, b.external_id, f"{sim:.3f}", reason, a.citizen_name == b.citizen_name,
                            a.subject, a.body[:160], b.subject, b.body[:160],
                            (a.submitted_at - b.submitted_at).days])
        self.stdout.write(f"sample of {len(picked)} flags written to {out}")
