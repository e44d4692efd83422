"""Benchmark the set-based escalation sweep on 1,000,000 cases in PostgreSQL, about 1% of them due.

Usage (from the repository root; the database is created when missing and rebuilt each run):

    .venv/bin/python scripts/bench_sweep.py [--cases 1000000] [--due-percent 1] \
        [--database-url postgres://postgres@127.0.0.1:5432/cw_bench]

It migrates a dedicated database, seeds the calendar and a small bureau, then writes the cases and
their running sign-for/reply clocks with one set-based ``INSERT … SELECT generate_series`` each
(columns taken from the models, so new columns with defaults are filled). All cases are being
handled (signed for), their reply clocks run; ``--due-percent`` of them passed their reply
deadline a few hours ago and take the 催办 step (督办单, audit event, digest e-mail) in the sweep, the
others are due in 10–40 days. Every case has a chain head (its audit chain of earlier events is not
written: the sweep reads only the heads). It prints the load average, the time and number of
statements of: the selection of due clocks, a full sweep (and statements per due case), and a
second sweep with nothing left to do. The hand-off of each e-mail to the Celery broker is replaced
by a counter (the outbox rows are written as in production). Targets (issue 11): ≤ 0.3 s for
1,000 due among 100,000, ≤ 2 s for 10,000 due among 1,000,000.

    .venv/bin/python scripts/bench_sweep.py --cases 100000     # 1,000 due
    .venv/bin/python scripts/bench_sweep.py                    # 1,000,000 cases, 10,000 due
"""

import argparse
from datetime import datetime
import os
from pathlib import Path
import sys
import time
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=1_000_000)
    parser.add_argument("--due-percent", type=float, default=1.0)
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--profile", action="store_true", help="print the sweep's top functions (cProfile)")
    parser.add_argument("--reuse", type=int, default=None, metavar="N",
                        help="reuse the database built by an earlier run and sweep N working days later "
                             "(3: the 10,000 urged cases take the 报分管局领导 step; 5: the referral)")
    parser.add_argument(
        "--database-url", default=os.environ.get("BENCH_DATABASE_URL",
                                                 "postgres://postgres@127.0.0.1:5432/cw_bench")
    )
    args = parser.parse_args()

    os.environ["DATABASE_URL"] = args.database_url
    os.environ.pop("REDIS_URL", None)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")
    if args.reuse is None:
        _database_recreate(args.database_url)

    import django

    django.setup()
    import logging

    logging.getLogger("casework").setLevel(logging.WARNING)
    from io import StringIO

    from django.core.management import call_command
    from django.db import connection

    from casework import escalation, outbox
    from casework.models import DigestLine, EscalationStep, Notification

    # A fixed working-day afternoon (Wednesday) in Beijing, so "overdue" is in working time.
    now = datetime(2026, 11, 25, 15, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
    if args.reuse is None:
        call_command("migrate", verbosity=0)
        call_command("calendar_seed", "--from-year", "2024", stdout=StringIO(), stderr=StringIO())
        from tests.factories import Bureau

        bureau = Bureau()
        units = [bureau.unit_a.pk, bureau.unit_b.pk]
        started = time.perf_counter()
        _cases_insert(n=args.cases, units=units, platform_id=bureau.platform.pk, now=now,
                      due_every=max(1, round(100 / args.due_percent)))
        build = time.perf_counter() - started
        print(f"built {args.cases:,} cases and {2 * args.cases:,} clocks in {build:.1f} s", flush=True)
    else:
        from casework.calendar import work_calendar as _cal

        now = _cal().add_working_days(now, args.reuse)
        print(f"reusing the database; sweeping at {now.isoformat()}", flush=True)

    sent = []
    outbox.notification_handoff = lambda pk: sent.append(pk) or True  # no broker in the benchmark
    from django.urls import reverse

    reverse("admin:index")  # a running worker has its URL resolver built; build it before timing
    print("load average:", Path("/proc/loadavg").read_text().split()[:3], flush=True)

    def timed(label, fn):
        count = [0]

        slow = []

        def counter(execute, sql, params, many, context):
            count[0] += 1
            t = time.perf_counter()
            try:
                return execute(sql, params, many, context)
            finally:
                slow.append((time.perf_counter() - t, sql[:90]))

        with connection.execute_wrapper(counter):
            t0, c0 = time.perf_counter(), time.process_time()
            result = fn()
            elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
        # The process's own CPU time too: on a shared, loaded machine the wall time mostly waits.
        print(f"{label}: {elapsed:.3f} s, {count[0]} statements (this process's CPU: {cpu:.3f} s)", flush=True)
        timed.last = (elapsed, count[0])
        if os.environ.get("BENCH_STATEMENTS"):
            for seconds, sql in sorted(slow, reverse=True)[:12]:
                print(f"    {seconds:7.3f} s  {sql}")
        return result

    from casework.calendar import work_calendar

    cal = work_calendar()
    urge = next(r for r in escalation.ladder_rungs() if r.level == ("urge" if args.reuse is None else "escalate"))
    due = timed(
        "select due clocks (urge rung)",
        lambda: escalation.escalation_due_clocks(
            now=now, rung=urge, cutoff=escalation._cutoff(cal, now, urge.threshold_days)
        ),
    )
    print(f"  due clocks: {len(due):,} of {2 * args.cases:,} running")
    def run_sweep():
        if not args.profile:
            return escalation.escalation_sweep(now=now, batch_size=args.batch_size)
        import cProfile
        import pstats

        profiler = cProfile.Profile()
        result = profiler.runcall(escalation.escalation_sweep, now=now, batch_size=args.batch_size)
        pstats.Stats(profiler).sort_stats(os.environ.get("BENCH_SORT", "cumulative")).print_stats(35)
        return result

    taken = timed("sweep", run_sweep)
    elapsed, statements = timed.last
    n = sum(taken.values())
    target = 2.0 if args.cases >= 1_000_000 else 0.3 if args.cases >= 100_000 else None
    print(f"  steps taken: {taken}; {statements / max(n, 1):.3f} statements per due case; "
          f"batches of {args.batch_size}")
    print(f"  digest e-mails (outbox rows): {Notification.objects.filter(key__startswith='digest:').count():,}, "
          f"cases listed: {DigestLine.objects.count():,}; e-mails handed to the broker: {len(sent):,}")
    if target:
        print(f"  target ≤ {target} s: {'met' if elapsed <= target else 'NOT met'}")
    print("load average:", Path("/proc/loadavg").read_text().split()[:3], flush=True)
    timed("second sweep (nothing due)", lambda: escalation.escalation_sweep(now=now))
    print(f"  escalation steps in the database: {EscalationStep.objects.count():,}")
    plan = escalation.CaseClock.objects.filter(
        stopped_at__isnull=True, clock__in=["reply"], due_at__lte=now
    ).values("pk").explain()
    print("  plan of the due-clock scan:", plan.splitlines()[0].strip())


def _database_recreate(url: str) -> None:
    import dj_database_url
    import psycopg

    cfg = dj_database_url.parse(url)
    name = cfg["NAME"]
    with psycopg.connect(
        host=cfg["HOST"] or "127.0.0.1", port=cfg["PORT"] or 5432, user=cfg["USER"] or "postgres",
        password=cfg["PASSWORD"] or None, dbname="postgres", autocommit=True,
    ) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def _sql_default(field, overrides: dict) -> str:
    from django.db import connection

    if field.column in overrides:
        return overrides[field.column]
    if getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False):
        return "now()"
    if field.null:
        return "NULL"
    if field.has_default():
        value = field.get_db_prep_save(field.get_default(), connection)
        if isinstance(value, bool):
            return "TRUE" if value else "FALSE"
        if isinstance(value, (int, float)):
            return str(value)
        return "'" + str(value).replace("'", "''") + "'"
    if field.get_internal_type() in ("CharField", "TextField", "SlugField"):
        return "''"
    raise RuntimeError(f"no value for {field.model.__name__}.{field.name}")


def _cases_insert(*, n: int, units: list[int], platform_id: int, now, due_every: int) -> None:
    """Write ``n`` handling cases and their running clocks with two INSERT … SELECT statements."""
    from django.db import connection

    from casework.models import AuditChainHead, Case, CaseClock

    ts = f"'{now.isoformat()}'::timestamptz"
    # Every ``due_every``-th case passed its reply deadline 1–5 hours ago; the others are due in
    # 10–40 days. The sign-for clock was stopped at acceptance, one hour after dispatch.
    reply_due = (
        f"CASE WHEN g % {due_every} = 0 THEN {ts} - ((1 + g % 5) * interval '1 hour') "
        f"ELSE {ts} + ((10 + g % 30) * interval '1 day') END"
    )
    unit = f"(ARRAY{units})[1 + g % {len(units)}]"
    case_values = {
        "reference": "'B-' || g", "platform_id": str(platform_id), "external_id": "'B' || g",
        "subject": "'基准测试留言 ' || g", "body": "'基准测试留言正文'",
        "submitted_at": f"{ts} - interval '20 days'", "message_type": "'consult'",
        "state": "'handling'", "lead_unit_id": unit, "handling_round": "1",
        "dispatched_at": f"{ts} - interval '20 days'",
        "accepted_at": f"{ts} - interval '20 days' + interval '1 hour'",
        "sign_for_due_at": f"{ts} - interval '19 days'", "reply_due_at": reply_due,
    }
    columns = [f for f in Case._meta.concrete_fields if not f.primary_key]
    with connection.cursor() as cursor:
        cursor.execute(
            f'INSERT INTO {Case._meta.db_table} ({", ".join(c.column for c in columns)}) '
            f"SELECT {', '.join(_sql_default(c, case_values) for c in columns)} "
            f"FROM generate_series(1, {n}) AS g"
        )
        clock_columns = [f for f in CaseClock._meta.concrete_fields if not f.primary_key]
        for clock, due, stopped, unit_expr in [
            ("sign_for", f"{ts} - interval '19 days'", f"{ts} - interval '20 days' + interval '1 hour'",
             "c.lead_unit_id"),
            ("reply", "c.reply_due_at", "NULL", "c.lead_unit_id"),
        ]:
            values = {
                "case_id": "c.id", "clock": f"'{clock}'", "round": "1", "unit_id": unit_expr,
                "started_at": "c.dispatched_at", "amount": "3", "time_unit": "'days'",
                "extended_days": "0", "due_at": due, "stopped_at": stopped,
                "calendar_unconfirmed": "''",
            }
            cursor.execute(
                f'INSERT INTO {CaseClock._meta.db_table} '
                f'({", ".join(c.column for c in clock_columns)}) '
                f"SELECT {', '.join(_sql_default(c, values) for c in clock_columns)} "
                f"FROM {Case._meta.db_table} c WHERE c.reference LIKE 'B-%%'"
            )
        # A chain head per case (its events are not written: the sweep reads only the heads).
        cursor.execute(
            f"INSERT INTO {AuditChainHead._meta.db_table} (case_id, event_count, head_hash, mac) "
            f"SELECT id, 3, md5(id::text) || md5(reference), md5(reference) || md5(id::text) "
            f"FROM {Case._meta.db_table} WHERE reference LIKE 'B-%%'"
        )
        cursor.execute(f"ANALYZE {AuditChainHead._meta.db_table}")
        cursor.execute(f"ANALYZE {Case._meta.db_table}")
        cursor.execute(f"ANALYZE {CaseClock._meta.db_table}")


if __name__ == "__main__":
    main()
