"""``manage.py router_eval FILE [--test FILE2] [--folds K]``: score the dispatch model on labelled messages.

FILE is a CSV (optionally gzipped) with ``subject``, ``body`` and a label column (``unit`` or
``category``; ``--label`` names another), e.g. the bundled
``casework/data/messages/fj2_classified.csv.gz``. Without ``--test`` the command cross-validates
FILE (stratified K folds, every message scored by a model that never saw it nor a near-copy of
it: near-duplicates, character 3-gram Jaccard ≥ 0.7, stay in one fold); with ``--test`` it
trains on FILE and scores FILE2. Prints macro- and micro-F1, top-3 accuracy, the per-class
figures and the confusion table. Several FILEs may be given (joined). Writes nothing.

``--bias`` adds the per-class bias (``casework.router.tune_bias``), fitted without the scored
messages: inside each training fold (nested 3-fold CV of that fold) or, with ``--test``, on the
training file's own out-of-fold decisions. ``router_train`` does not use it (see docs/learning.md).
"""

import csv
import gzip
import io
from pathlib import Path
import time

from django.core.management.base import BaseCommand, CommandError
import numpy as np

from casework.router import (
    Router,
    cross_validate,
    inner_bias,
    near_duplicate_groups,
    scores_format,
    scores_of,
    text_of,
    words_of,
)


def labelled_rows(path: str, label: str | None) -> tuple[list[str], list[str]]:
    """Read (texts, labels) from a CSV or .csv.gz; rows with an empty label or text are skipped.

    Raises:
        CommandError: the file is missing or has no label column.
    """
    p = Path(path)
    if not p.exists():
        raise CommandError(f"no such file: {path}")
    raw = p.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    reader = csv.DictReader(io.StringIO(raw.decode("utf-8-sig")))
    columns = reader.fieldnames or []
    column = label or next((c for c in ("unit", "category", "label") if c in columns), None)
    if column is None or column not in columns:
        raise CommandError(f"{path}: no label column (unit, category or --label); columns: {', '.join(columns)}")
    texts, labels = [], []
    for row in reader:
        text = text_of(row.get("subject") or "", row.get("body") or "")
        if (row.get(column) or "").strip() and text.strip("。"):
            texts.append(text)
            labels.append(row[column].strip())
    return texts, labels


class Command(BaseCommand):
    help = "Cross-validate the dispatch model on labelled CSV files, or train on one and score another."

    def add_arguments(self, parser):
        parser.add_argument("files", nargs="+", help="labelled CSV(.gz) files to train on (joined)")
        parser.add_argument("--test", action="append", default=[], help="labelled CSV(.gz) to score")
        parser.add_argument("--folds", type=int, default=5, help="cross-validation folds (default 5)")
        parser.add_argument("--label", default=None, help="label column (default: unit or category)")
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--bias", action="store_true",
                            help="add the per-class bias (casework.router.tune_bias), fitted inside each "
                                 "training fold (nested 3-fold), or on the training file's out-of-fold "
                                 "decisions with --test; off by default, as in router_train")
        parser.add_argument("--keep-near-duplicates-apart", action="store_true",
                            help="let near-duplicate messages fall into different folds (the default keeps "
                                 "each group of near-duplicates, char 3-gram Jaccard >= 0.7, in one fold)")

    def handle(self, *args, files, test, folds, label, seed, keep_near_duplicates_apart=False, bias=False,
               **options):
        texts, labels = [], []
        for f in files:
            t, lab = labelled_rows(f, label)
            texts += t
            labels += lab
        if len(set(labels)) < 2:
            raise CommandError("need at least two labels to train")
        start = time.monotonic()
        if test:
            test_texts, test_labels = [], []
            for f in test:
                t, lab = labelled_rows(f, label)
                test_texts += t
                test_labels += lab
            cut = [words_of(t) for t in texts]
            router = Router()
            X = router.fit_matrix(texts, labels, cut=cut)
            if bias:
                router.set_bias(inner_bias(X, labels, near_duplicate_groups(texts), C=router.C))
            trained = time.monotonic() - start
            decision = router.decision(test_texts)
            scores = scores_of(test_labels, decision, router.classes)
            title = (f"trained on {len(texts)} messages ({trained:.1f} s), scored {len(test_texts)} "
                     f"unseen messages")
        else:
            if folds < 2:
                raise CommandError("--folds must be at least 2")
            cut = [words_of(t) for t in texts]
            groups = None if keep_near_duplicates_apart else near_duplicate_groups(texts)
            scores, _d, _c = cross_validate(texts, labels, folds=folds, seed=seed, cut=cut, groups=groups,
                                            bias=bias)
            title = f"{folds}-fold stratified cross-validation on {len(texts)} messages"
            title += ("\nper-class bias: fitted inside each training fold (nested 3-fold), never on the scored fold"
                      if bias else "")
            if groups is not None:
                n_groups = len(set(groups.tolist()))
                title += (f"\nnear-duplicates kept in one fold: {len(texts) - n_groups} messages repeat another "
                          f"(char 3-gram Jaccard >= 0.7), {n_groups} distinct")
        elapsed = time.monotonic() - start
        self.stdout.write(scores_format(scores, title=title))
        self.stdout.write(f"\ntime: {elapsed:.1f} s")
        if np.isnan(scores.macro_f1):
            raise CommandError("no score")
