"""Benchmark the set-based escalation sweep on 1,000,000 cases in PostgreSQL, about 1% of them due.

Usage (from the repository root; the database is created when missing and rebuilt each run, unless
``--reset``, which reuses it and first undoes what earlier sweeps wrote in it):

    .venv/bin/python scripts/bench_sweep.py [--cases 1000000] [--due-percent 1] [--repeat 3] \
        [--reset] [--profile] [--database-url postgres://postgres@127.0.0.1:5432/cw_bench]

Each sweep prints its wall time, the CPU time of this Python process and of its PostgreSQL backend
(``/proc/<pid>/stat``, when the server runs on this machine), its statements and statements per due
case, and the load average before and after; then the median and range of the ``--repeat`` sweeps
and the target. ``run(**kw)`` is the part of ``scripts/bench.py`` (see its docstring).

It migrates a dedicated database, seeds the calendar and a small bureau, then writes the cases and
their running sign-for/reply clocks with one set-based ``INSERT … SELECT generate_series`` each
(columns taken from the models, so new columns with defaults are filled). All cases are being
handled (signed for), their reply clocks run; ``--due-percent`` of them passed their reply
deadline a few hours ago and take the 催办 step (督办单, audit event, digest e-mail) in the sweep, the
others are due in 10–40 days. The tables are vacuumed after the build, as autovacuum would (the
due-clock selection is an index-only scan on a live site). Every case has a chain head (its audit chain of earlier events is not
written: the sweep reads only the heads). It prints, besides the sweeps, the selection of due clocks alone and a
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
import statistics
import sys
import time
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


TARGETS = ((1_000_000, 2.0), (100_000, 0.3))  # (open cases at least, seconds): issue 11 §1
# A fixed working-day afternoon (Wednesday) in Beijing, so "overdue" is in working time.
NOW = (2026, 11, 25, 15, 0)


def target_for(cases: int) -> float | None:
    return next((t for n, t in TARGETS if cases >= n), None)


def _args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=1_000_000)
    parser.add_argument("--due-percent", type=float, default=1.0)
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=3,
                        help="sweeps to time; before each, the writes of the last one are undone (--reset)")
    parser.add_argument("--profile", action="store_true", help="print the sweep's top functions (cProfile)")
    parser.add_argument("--reuse", type=int, default=None, metavar="N",
                        help="reuse the database built by an earlier run and sweep N working days later "
                             "(3: the 10,000 urged cases take the 报分管局领导 step; 5: the referral)")
    parser.add_argument("--reset", action="store_true",
                        help="reuse the database and first undo every escalation written in it (sweep again "
                             "at the build's time, --reuse 0)")
    parser.add_argument(
        "--database-url", default=os.environ.get("BENCH_DATABASE_URL",
                                                 "postgres://postgres@127.0.0.1:5432/cw_bench")
    )
    return parser.parse_args(argv)


def main(argv=None) -> None:
    args = _args(argv)
    if args.reset and args.reuse is None:
        args.reuse = 0
    os.environ["DATABASE_URL"] = args.database_url
    os.environ.pop("REDIS_URL", None)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")
    import django

    django.setup()
    import logging

    logging.getLogger("casework").setLevel(logging.WARNING)
    now = prepare(cases=args.cases, due_percent=args.due_percent, reuse=args.reuse, reset=args.reset,
                  database_url=args.database_url)
    runs = []
    for i in range(max(1, args.repeat)):
        if i or args.reset:
            _undo_escalations()
        runs.append(sweep_once(now=now, batch_size=args.batch_size, profile=args.profile and i == 0,
                               statements=bool(os.environ.get("BENCH_STATEMENTS")), first=i == 0,
                               level="urge" if not args.reuse else "escalate"))
    print(summary(runs, cases=args.cases))
    if args.reuse in (None, 0):
        _nothing_due(now)


def prepare(*, cases: int, due_percent: float = 1.0, reuse: int | None = None, reset: bool = False,
            database_url: str) -> datetime:
    """Build (or reuse) the benchmark database; return the time to sweep at."""
    from io import StringIO

    from django.core.management import call_command

    from casework.calendar import work_calendar

    now = datetime(*NOW, tzinfo=ZoneInfo("Asia/Shanghai"))
    if reuse is None:
        from django.db import connections

        connections.close_all()
        _database_recreate(database_url)
        call_command("migrate", verbosity=0)
        call_command("calendar_seed", "--from-year", "2024", stdout=StringIO(), stderr=StringIO())
        from tests.factories import Bureau

        bureau = Bureau()
        units = [bureau.unit_a.pk, bureau.unit_b.pk]
        started = time.perf_counter()
        _cases_insert(n=cases, units=units, platform_id=bureau.platform.pk, now=now,
                      due_every=max(1, round(100 / due_percent)))
        build = time.perf_counter() - started
        print(f"built {cases:,} cases and {2 * cases:,} clocks in {build:.1f} s "
              f"(load {_load()})", file=sys.stderr, flush=True)
        return now
    if reuse:
        now = work_calendar().add_working_days(now, reuse)
    print(f"reusing the database; sweeping at {now.isoformat()}", file=sys.stderr, flush=True)
    return now


def _load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def _backend_cpu(pid: int | None) -> float | None:
    """CPU seconds (user + system) of the PostgreSQL backend ``pid``, when it runs on this machine."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError, TypeError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def sweep_once(*, now, batch_size: int = 500, profile: bool = False, statements: bool = False,
               first: bool = True, level: str = "urge") -> dict:
    """Time one sweep at ``now``: wall, this process's CPU, the backend's CPU, statements, load."""
    from django.db import connection
    from django.urls import reverse

    from casework import escalation, outbox
    from casework.calendar import work_calendar
    from casework.models import DigestLine, Notification

    sent = []
    outbox.notification_handoff = lambda pk: sent.append(pk) or True  # no broker in the benchmark
    reverse("admin:index")  # a running worker has its URL resolver built; build it before timing
    cal = work_calendar()
    rung = next(r for r in escalation.ladder_rungs() if r.level == level)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        backend = cursor.fetchone()[0]

    def timed(fn):
        count, slow = [0], []

        def counter(execute, sql, params, many, context):
            count[0] += 1
            t = time.perf_counter()
            try:
                return execute(sql, params, many, context)
            finally:
                slow.append((time.perf_counter() - t, sql[:100]))

        with connection.execute_wrapper(counter):
            b0 = _backend_cpu(backend)
            t0, c0 = time.perf_counter(), time.process_time()
            result = fn()
            elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
            b1 = _backend_cpu(backend)
        return result, {"wall": elapsed, "cpu": cpu, "statements": count[0],
                        "backend_cpu": None if b0 is None or b1 is None else b1 - b0,
                        "slow": sorted(slow, reverse=True)[:12]}

    load_before = _load()
    due, sel = timed(lambda: escalation.escalation_due_clocks(
        now=now, rung=rung, cutoff=escalation._cutoff(cal, now, rung.threshold_days)))

    def run_sweep():
        if not profile:
            return escalation.escalation_sweep(now=now, batch_size=batch_size)
        import cProfile
        import pstats

        profiler = cProfile.Profile()
        result = profiler.runcall(escalation.escalation_sweep, now=now, batch_size=batch_size)
        pstats.Stats(profiler, stream=sys.stderr).sort_stats(
            os.environ.get("BENCH_SORT", "cumulative")).print_stats(40)
        return result

    taken, m = timed(run_sweep)
    n = sum(taken.values())
    m.update(load=f"{load_before} → {_load()}", taken=taken, due=len(due), select=sel,
             per_case=m["statements"] / max(n, 1),
             digests=Notification.objects.filter(key__startswith="digest:").count(),
             listed=DigestLine.objects.count(), handed=len(sent))
    bcpu = "n/a" if m["backend_cpu"] is None else f"{m['backend_cpu']:.3f} s"
    print(f"select due clocks ({level} rung): {sel['wall']:.3f} s, {sel['statements']} statement, "
          f"{len(due):,} due", flush=True)
    print(f"sweep: {m['wall']:.3f} s wall, CPU {m['cpu']:.3f} s Python + {bcpu} PostgreSQL backend, "
          f"{m['statements']} statements ({m['per_case']:.4f} per due case), taken {taken}, "
          f"load {m['load']}", flush=True)
    if first:
        print(f"  digest e-mails (outbox rows): {m['digests']:,}, cases listed: {m['listed']:,}; "
              f"e-mails handed to the broker: {m['handed']:,}; batches of {batch_size}", flush=True)
    if statements:
        for seconds, sql in m["slow"]:
            print(f"    {seconds:7.3f} s  {sql}")
    return m


def summary(runs: list[dict], *, cases: int) -> str:
    """The median and range of ``runs`` with the target for ``cases`` open cases."""
    def stat(key):
        values = sorted(r[key] for r in runs if r[key] is not None)
        if not values:
            return "n/a"
        return f"{statistics.median(values):.3f} s (range {values[0]:.3f}–{values[-1]:.3f})"

    target = target_for(cases)
    walls = [r["wall"] for r in runs]
    verdict = ""
    if target:
        verdict = f"; target ≤ {target} s: {'met' if statistics.median(walls) <= target else 'NOT met'} (median)"
    return (f"{len(runs)} sweeps of {cases:,} open cases, {runs[0]['due']:,} due: wall {stat('wall')}; "
            f"CPU Python {stat('cpu')}, PostgreSQL backend {stat('backend_cpu')}; "
            f"{runs[0]['statements']} statements ({runs[0]['per_case']:.4f} per due case); "
            f"load {', '.join(r['load'] for r in runs)}{verdict}")


def _nothing_due(now) -> None:
    from django.db import connection

    from casework import escalation
    from casework.models import EscalationStep

    count = [0]
    with connection.execute_wrapper(lambda ex, sql, p, many, ctx: count.__setitem__(0, count[0] + 1)
                                    or ex(sql, p, many, ctx)):
        t0, c0 = time.perf_counter(), time.process_time()
        escalation.escalation_sweep(now=now)
        print(f"second sweep (nothing due): {time.perf_counter() - t0:.3f} s, {count[0]} statements "
              f"(CPU {time.process_time() - c0:.3f} s)")
    print(f"  escalation steps in the database: {EscalationStep.objects.count():,}")
    rung = next(r for r in escalation.ladder_rungs() if r.level == "urge")
    plan = escalation._due_clocks_qs(now=now, rung=rung, cutoff=now).values("pk").explain()
    print("  plan of the due-clock selection:", " / ".join(x.strip() for x in plan.splitlines()[:3]))


def _undo_escalations() -> None:
    """Delete what sweeps wrote in the benchmark database (its own, scratch) and reset the chain heads.

    The audit events are append-only (a trigger); this database is the benchmark's, so its triggers
    are set aside for the session (``session_replication_role``) while the sweeps' rows go.
    """
    from django.db import connection, transaction

    from casework.models import AuditChainHead, Case

    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL session_replication_role = replica")
        for sql in [
            "DELETE FROM casework_digestline",
            "DELETE FROM casework_escalationdigestbatch",
            "DELETE FROM casework_notificationrecipient WHERE notification_id IN "
            "(SELECT id FROM casework_notification WHERE key LIKE 'digest:%%')",
            "DELETE FROM casework_notification WHERE key LIKE 'digest:%%'",
            "DELETE FROM casework_disciplinereferral",
            "DELETE FROM casework_supervisionnotice",
            "DELETE FROM casework_escalationstep",
            "DELETE FROM casework_caseevent WHERE action LIKE 'escalation_%%'",
            f"UPDATE {AuditChainHead._meta.db_table} h SET event_count = 3, "
            "head_hash = md5(c.id::text) || md5(c.reference), mac = md5(c.reference) || md5(c.id::text) "
            f"FROM {Case._meta.db_table} c WHERE c.id = h.case_id AND h.event_count <> 3",
        ]:
            cursor.execute(sql)
    with connection.cursor() as cursor:
        for table in ("casework_escalationstep", "casework_supervisionnotice", "casework_caseevent",
                      "casework_auditchainhead", "casework_escalationdigestbatch", "casework_digestline",
                      "casework_notification"):
            cursor.execute(f"VACUUM ANALYZE {table}")


def run(**kw) -> list[tuple[str, str, str]]:
    """scripts/bench.py's part: the sweep at ``cases`` open cases (1% due) and at 100,000, 3 sweeps each.

    Keywords (scripts/bench.py): ``cases`` (default 1,000,000), ``quick`` (100,000 only),
    ``database_url`` (its scratch database, rebuilt). Returns ``(measure, figure, target)`` rows:
    median wall time with range, CPU of Python and of the PostgreSQL backend, load average, and
    the statements per due case.
    """
    cases = int(kw.get("cases") or 1_000_000)
    url = kw.get("database_url") or "postgres://postgres@127.0.0.1:5432/cw_bench_sweep"
    os.environ["DATABASE_URL"] = url
    os.environ.pop("REDIS_URL", None)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")
    import django

    django.setup()
    import logging

    logging.getLogger("casework").setLevel(logging.WARNING)
    sizes = [cases] if kw.get("quick") or cases <= 100_000 else [cases, 100_000]
    rows = []
    for size in sizes:
        now = prepare(cases=size, database_url=url)
        runs = []
        for i in range(3):
            if i:
                _undo_escalations()
            runs.append(sweep_once(now=now, first=i == 0))
        walls = sorted(r["wall"] for r in runs)
        cpus = sorted(r["cpu"] for r in runs)
        backends = sorted(r["backend_cpu"] for r in runs if r["backend_cpu"] is not None)
        figure = (f"{statistics.median(walls):.2f} s median ({walls[0]:.2f}–{walls[-1]:.2f}, 3 sweeps); "
                  f"CPU {statistics.median(cpus):.2f} s Python"
                  + (f" + {statistics.median(backends):.2f} s PostgreSQL" if backends else "")
                  + f"; {runs[0]['statements']} statements; load {runs[0]['load']}")
        target = target_for(size)
        rows.append((f"escalation sweep, {size:,} open cases, {runs[0]['due']:,} due",
                     figure, f"≤ {target} s" if target else "—"))
        if size == sizes[0]:
            rows.append((f"statements per due case ({runs[0]['due']:,} due, batches of 500)",
                         f"{runs[0]['per_case']:.4f} ({runs[0]['statements']} statements)",
                         "independent of the number due"))
    return rows


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
        # VACUUM as autovacuum would after such an insert: the visibility map lets the due-clock
        # selection be an index-only scan (issue 11), as on a live site.
        cursor.execute(f"VACUUM ANALYZE {AuditChainHead._meta.db_table}")
        cursor.execute(f"VACUUM ANALYZE {Case._meta.db_table}")
        cursor.execute(f"VACUUM ANALYZE {CaseClock._meta.db_table}")


if __name__ == "__main__":
    main()
