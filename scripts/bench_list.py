"""Benchmark the case list, the admin index (queue tiles) and the dashboard at 1,000,000 cases.

Usage (from the repository root; PostgreSQL; the database is rebuilt unless ``--skip-build``):

    .venv/bin/python scripts/bench_list.py [--cases 1000000 | --ten-million] [--repeat 7] [--skip-build] \
        [--drop] [--login LOGIN …] [--database-url postgres://postgres@127.0.0.1:5432/cw_bench_list]

The database is kept (for ``--skip-build``) unless ``--drop``; ``run()`` (``scripts/bench.py``)
drops it. At 10,000,000 cases the target is 300 ms; the build is set-based (a few statements)
and its time is printed and returned as a row.

It migrates a dedicated database, loads the demo bureau (its 42 staff in 16 units, every role),
then writes the cases with one set-based ``INSERT … SELECT generate_series`` per table (cases,
their sign-for and reply clocks, co-unit tasks, pending extensions, open referrals): 70% archived
over three years, the rest spread over every state of the loop and every handling unit, 1% of the
running clocks overdue. Then, signed in as each role's demo login through Django's test client
(the whole request: middleware, admin, templates), it times every role's default case list, its
queues and the common filters (state, unit, overdue, search by reference), the admin index with
the queue tiles and the dashboard's data, and prints median and range with the number of queries
and the median CPU time of a request (this process, and the PostgreSQL backend's, read from
``/proc`` when the server runs on this host: figures that the machine's load does not inflate).

``run(n_cases, ...)`` returns ``[(measure, figure, target)]`` for ``scripts/bench.py``.
"""

import argparse
import os
from pathlib import Path
import statistics
import sys
import time

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/cw_bench_list"
TARGET_MS = 150
TARGET_MS_10M = 300

# (login, role) of the demo bureau: every role's default view is measured.
ROLES = [
    ("admin", "superuser"),
    ("wpb_li", "dispatcher"),
    ("wpb_zhao", "office_reviewer"),
    ("leader_han", "leader"),
    ("jjdc_wu", "supervisor"),
    ("hz_xu", "handler (police type)"),
    ("a3_h1", "handler (district)"),
]


def _setup_django(database_url: str) -> None:
    os.environ["DATABASE_URL"] = database_url
    os.environ.pop("REDIS_URL", None)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")
    os.environ.setdefault("CASEWORK_VAR_DIR", "/tmp/var-bench-list")
    import django

    django.setup()


def _database_recreate(url: str) -> None:
    import dj_database_url
    import psycopg

    cfg = dj_database_url.parse(url)
    with psycopg.connect(
        host=cfg["HOST"] or "127.0.0.1", port=cfg["PORT"] or 5432, user=cfg["USER"] or "postgres",
        password=cfg["PASSWORD"] or None, dbname="postgres", autocommit=True,
    ) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{cfg["NAME"]}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{cfg["NAME"]}"')


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
        if isinstance(value, (dict, list)):
            import json

            return "'" + json.dumps(value).replace("'", "''") + "'"
        return "'" + str(value).replace("'", "''") + "'"
    if field.get_internal_type() in ("CharField", "TextField", "SlugField"):
        return "''"
    raise RuntimeError(f"no value for {field.model.__name__}.{field.name}")


def _insert_select(cursor, model, values: dict, source: str) -> None:
    columns = [f for f in model._meta.concrete_fields if not f.primary_key]
    cursor.execute(
        f'INSERT INTO {model._meta.db_table} ({", ".join(c.column for c in columns)}) '
        f"SELECT {', '.join(_sql_default(c, values) for c in columns)} {source}"
    )


# State of case g (1-based): 70% archived, then replied and each active state.
STATE_SQL = """CASE
  WHEN g % 100 < 70 THEN 'archived'
  WHEN g % 100 < 76 THEN 'replied'
  WHEN g % 100 < 79 THEN 'registered'
  WHEN g % 100 < 83 THEN 'dispatched'
  WHEN g % 100 < 92 THEN 'handling'
  WHEN g % 100 < 95 THEN 'office_review'
  WHEN g % 100 < 98 THEN 'leader_review'
  ELSE 'approved' END"""


def seed(*, n_cases: int, now) -> dict:
    """Load the demo bureau and write ``n_cases`` cases with their clocks in a few set-based statements.

    Returns ``{"cases": n, "clocks": n, "seconds": s}``.
    """
    from io import StringIO

    from django.core.management import call_command
    from django.db import connection

    from accounts.models import Unit, User
    from accounts.presets import bureau_preset_load
    from accounts.selectors import handling_units_q
    from casework.models import Case, CaseClock, CoUnitTask, DisciplineReferral, Extension, Platform

    started = time.perf_counter()
    call_command("migrate", verbosity=0)
    call_command("calendar_seed", "--from-year", "2023", stdout=StringIO(), stderr=StringIO())
    bureau_preset_load(password="demo2026")
    if not User.objects.filter(username="admin").exists():
        User.objects.create_superuser("admin", "admin@bureau.invalid", "demo2026", full_name="系统管理员")
    platform, _ = Platform.objects.get_or_create(code="bench", defaults={"name": "基准平台"})
    units = list(Unit.objects.filter(handling_units_q()).order_by("pk").values_list("pk", flat=True))
    admin_id = User.objects.get(username="admin").pk
    ts = f"'{now.isoformat()}'::timestamptz"
    k = len(units)
    unit = f"(ARRAY{units})[1 + (g / 7) % {k}]"
    # Submitted over three years, newest last; active cases are the recent ones' states.
    submitted = f"{ts} - (({n_cases} - g) * interval '1 second' * {int(3 * 365 * 86400 / max(n_cases, 1))})"
    state = STATE_SQL
    reply_due = (f"CASE WHEN g % 100 = 84 THEN {ts} - ((1 + g % 5) * interval '1 hour') "
                 f"ELSE {ts} + ((1 + g % 30) * interval '1 day') END")
    sign_due = (f"CASE WHEN g % 100 = 80 THEN {ts} - interval '2 hours' "
                f"ELSE {ts} + ((1 + g % 3) * interval '1 day') END")
    case_values = {
        "reference": "'BL-' || lpad(g::text, 8, '0')", "platform_id": str(platform.pk),
        "external_id": "'BL' || g", "subject": "'列表基准留言 ' || g || ' 噪音扰民'", "body": "'列表基准留言正文'",
        "submitted_at": submitted, "message_type": "'consult'", "state": state,
        "lead_unit_id": f"CASE WHEN g % 100 BETWEEN 76 AND 78 THEN NULL ELSE {unit} END",
        "handling_round": "CASE WHEN g % 100 = 77 THEN 2 ELSE 1 END",
        "dispatched_at": f"CASE WHEN g % 100 BETWEEN 76 AND 78 THEN NULL ELSE {submitted} + interval '1 hour' END",
        "accepted_at": f"CASE WHEN g % 100 BETWEEN 76 AND 82 THEN NULL ELSE {submitted} + interval '2 hours' END",
        "feedback_at": f"CASE WHEN g % 100 < 76 OR g % 100 >= 92 OR g % 100 = 90 THEN {submitted} + interval '3 days' END",
        "sign_for_due_at": f"CASE WHEN g % 100 BETWEEN 76 AND 78 THEN NULL ELSE {sign_due} END",
        "reply_due_at": f"CASE WHEN g % 100 BETWEEN 76 AND 78 THEN NULL ELSE {reply_due} END",
        "published_at": f"CASE WHEN g % 100 < 76 THEN {submitted} + interval '6 days' END",
        "archived_at": f"CASE WHEN g % 100 < 70 THEN {submitted} + interval '9 days' END",
        "key_case_leader_id": "NULL",
    }
    table = Case._meta.db_table
    with connection.cursor() as cursor:
        _insert_select(cursor, Case, case_values, f"FROM generate_series(1, {n_cases}) AS g")
        src = (f"FROM {table} c CROSS JOIN LATERAL (SELECT substr(c.reference, 4)::int AS g) x "
               f"WHERE c.reference LIKE 'BL-%%' AND c.dispatched_at IS NOT NULL")
        for clock, due, stopped in [
            ("sign_for", "c.sign_for_due_at", "CASE WHEN c.state = 'dispatched' THEN NULL ELSE c.accepted_at END"),
            ("reply", "c.reply_due_at",
             "CASE WHEN c.state IN ('replied', 'archived') THEN c.published_at END"),
        ]:
            _insert_select(cursor, CaseClock, {
                "case_id": "c.id", "clock": f"'{clock}'", "round": "c.handling_round", "unit_id": "c.lead_unit_id",
                "started_at": "c.dispatched_at", "amount": "3", "time_unit": "'days'", "extended_days": "0",
                "due_at": due, "stopped_at": stopped, "calendar_unconfirmed": "''",
            }, src)
        # Joint handling: every 50th handling case has a co-unit task for the next unit.
        _insert_select(cursor, CoUnitTask, {
            "case_id": "c.id", "unit_id": f"(ARRAY{units})[1 + (g / 7 + 1) % {k}]", "task": "'协查'",
            "due_at": "c.reply_due_at", "reported_at": "NULL", "reported_by_id": "NULL",
        }, src + " AND c.state IN ('dispatched', 'handling') AND g % 50 = 9")
        _insert_select(cursor, Extension, {
            "case_id": "c.id", "clock": "'reply'", "round": "1", "unit_id": "c.lead_unit_id",
            "requested_by_id": str(admin_id), "requested_at": ts, "reason": "'需协调'", "requested_days": "5",
            "decision": "'pending'", "old_due_at": "c.reply_due_at",
        }, src + " AND c.state = 'handling' AND g % 500 = 85")
        _insert_select(cursor, DisciplineReferral, {
            "case_id": "c.id",
        } | _referral_values(), src + " AND c.state = 'handling' AND g % 1000 = 86")
        for model in (Case, CaseClock, CoUnitTask, Extension, DisciplineReferral):
            cursor.execute(f"VACUUM ANALYZE {model._meta.db_table}")
    return {"cases": n_cases, "seconds": time.perf_counter() - started}


def _referral_values() -> dict:
    from casework.models import DisciplineReferral

    values = {}
    for f in DisciplineReferral._meta.concrete_fields:
        if f.primary_key or f.column == "case_id":
            continue
        if f.is_relation and not f.null:
            values[f.column] = "c.lead_unit_id" if "unit" in f.name else "NULL"
        elif f.get_internal_type() == "DateTimeField" and not f.null:
            values[f.column] = "now()"
        elif f.get_internal_type() == "JSONField":
            values[f.column] = "'{}'"
    return values


def _backend_cpu_ms(pid: int | None) -> float | None:
    """CPU time (user + system, ms) used so far by PostgreSQL backend ``pid``, or None when not on this host."""
    if pid is None:
        return None
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) * 1000 / os.sysconf("SC_CLK_TCK")


def _timed(client, url: str, repeat: int) -> dict:
    """Request ``url`` once to warm up, then ``repeat`` times; return the per-request figures.

    Keys: ``times`` (wall ms), ``cpu`` (this process's CPU ms), ``pg_cpu`` (the PostgreSQL
    backend's CPU ms, read from ``/proc``; None when the server is on another host), ``queries``,
    ``status`` and ``sql`` (median ms spent in statements, as the client saw them). The CPU times
    count what the request cost whatever the machine's load; the wall time includes the waits.
    """
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    times, cpu, pg_cpu, sql_ms = [], [], [], []
    queries = 0
    status = 0
    client.get(url)  # warm the plan cache and the caches of this process
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        pid = cursor.fetchone()[0]
    for _ in range(repeat):
        with CaptureQueriesContext(connection) as ctx:
            b0 = _backend_cpu_ms(pid)
            c0 = time.process_time()
            t0 = time.perf_counter()
            response = client.get(url)
            times.append((time.perf_counter() - t0) * 1000)
            cpu.append((time.process_time() - c0) * 1000)
            b1 = _backend_cpu_ms(pid)
            pg_cpu.append(None if b0 is None or b1 is None else b1 - b0)
        queries = len(ctx.captured_queries)
        sql_ms.append(sum(float(q["time"]) for q in ctx.captured_queries) * 1000)
        status = response.status_code
    return {"times": times, "cpu": cpu, "pg_cpu": None if None in pg_cpu else pg_cpu, "queries": queries,
            "status": status, "sql": statistics.median(sql_ms)}


def pages_for(*, login: str) -> list[tuple[str, str]]:
    """Return ``[(label, url)]`` measured for ``login``: default list, queues, filters, index, dashboard."""
    from urllib.parse import urlencode

    from django.urls import reverse

    from accounts.models import Unit, User
    from accounts.selectors import handling_units_q, units_in_scope
    from casework.selectors import queues_for_user

    user = User.objects.get(username=login)
    base = reverse("admin:casework_case_changelist")
    unit = units_in_scope(user=user).filter(handling_units_q()).order_by("pk").first() or Unit.objects.filter(
        handling_units_q()).order_by("pk").first()
    pages = [("list default", base)]
    pages += [(f"queue {q.key}", f"{base}?{urlencode({'queue': q.key})}") for q in queues_for_user(user=user)]
    pages += [
        ("filter state=handling", f"{base}?state=handling"),
        ("filter unit", f"{base}?unit={unit.pk}"),
        ("filter overdue", f"{base}?overdue=yes"),
        ("search reference", f"{base}?q=BL-00912345"),
        ("date drill-down year", f"{base}?submitted_at__year=2025"),
        ("admin index (queue tiles)", reverse("admin:index")),
        ("dashboard data", reverse("assessment:dashboard_data")),
    ]
    return pages


def run(n_cases: int = 1_000_000, *, cases: int | None = None, quick: bool = False, repeat: int = 7,
        database_url: str | None = None, build: bool = True, logins: list[str] | None = None,
        verbose: bool = True, drop: bool = True, **_ignored) -> list[tuple[str, str, str]]:
    """Build (optionally) and measure; return ``[(measure, figure, target)]``.

    Called by ``scripts/bench.py`` as ``run(**kw)`` (``cases``, ``quick``, ``database_url``; other
    keywords are ignored). The target is 150 ms below 10,000,000 cases and 300 ms from there on
    (issue 11 §7).

    Args:
        n_cases: number of cases to seed (ignored with ``build=False``); ``cases`` overrides it.
        quick: 5 timed requests per page instead of ``repeat``.
        repeat: timed requests per page (after one warm-up request).
        database_url: PostgreSQL database to (re)build, default ``cw_bench_list``.
        build: rebuild the database first; False reuses the last build.
        logins: the demo logins to measure (default every role's, :data:`ROLES`).
        drop: drop the database afterwards (``scripts/bench.py`` parts clean up after themselves).
    """
    if cases is not None:
        n_cases = cases
    if quick:
        repeat = min(repeat, 5)
    from datetime import datetime
    from zoneinfo import ZoneInfo

    url = database_url or os.environ.get("BENCH_LIST_DATABASE_URL", DEFAULT_URL)
    if build:
        _database_recreate(url)
    _setup_django(url)
    from django.conf import settings
    from django.test import Client

    from accounts.models import User
    from casework.models import Case

    settings.ALLOWED_HOSTS = ["*"]
    settings.DEBUG = False
    now = datetime.now(ZoneInfo("Asia/Shanghai"))
    rows = []
    if build:
        info = seed(n_cases=n_cases, now=now)
        if verbose:
            print(f"built {info['cases']:,} cases in {info['seconds']:.0f} s", flush=True)
        rows.append((f"building {info['cases']:,} cases (set-based INSERT … SELECT generate_series, with "
                     "clocks, co-unit tasks, extensions, referrals, VACUUM ANALYZE)", f"{info['seconds']:.0f} s", "—"))
    else:  # indexes added since the last build
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
    total = Case.objects.count()
    target_ms = TARGET_MS if total < 10_000_000 else TARGET_MS_10M
    all_medians = []
    for login, role in ROLES:
        if logins and login not in logins:
            continue
        client = Client()
        client.force_login(User.objects.get(username=login))
        for label, page in pages_for(login=login):
            m = _timed(client, page, repeat)
            times = m["times"]
            med = statistics.median(times)
            if label.startswith(("list", "queue", "filter", "search", "date")):
                all_medians.append(med)
            figure = (f"{med:.0f} ms median ({min(times):.0f}–{max(times):.0f}), {m['queries']} queries, "
                      f"{m['sql']:.0f} ms in SQL, CPU {statistics.median(m['cpu']):.0f} ms app")
            if m["pg_cpu"] is not None:
                figure += f" + {statistics.median(m['pg_cpu']):.0f} ms PostgreSQL"
            if m["status"] != 200:
                figure += f", HTTP {m['status']}"
            target = f"≤ {target_ms} ms, ≤ 12 queries" if not label.startswith("dashboard") else "≤ 2000 ms"
            rows.append((f"{role}: {label}", figure, target))
            if verbose:
                print(f"{role:24} {label:28} {figure}", flush=True)
    if all_medians:
        rows.insert(0, (f"case list at {total:,} cases, every role and filter (worst median)",
                        f"{max(all_medians):.0f} ms", f"≤ {target_ms} ms"))
    if drop:
        from django.db import connections

        connections.close_all()
        _database_drop(url)
    return rows


def _database_drop(url: str) -> None:
    import dj_database_url
    import psycopg

    cfg = dj_database_url.parse(url)
    with psycopg.connect(
        host=cfg["HOST"] or "127.0.0.1", port=cfg["PORT"] or 5432, user=cfg["USER"] or "postgres",
        password=cfg["PASSWORD"] or None, dbname="postgres", autocommit=True,
    ) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{cfg["NAME"]}" WITH (FORCE)')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=1_000_000)
    parser.add_argument("--ten-million", action="store_true", help="10,000,000 cases (target 300 ms)")
    parser.add_argument("--drop", action="store_true", help="drop the database afterwards")
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--skip-build", action="store_true")
    parser.add_argument("--login", action="append", help="measure only these demo logins")
    parser.add_argument("--database-url", default=os.environ.get("BENCH_LIST_DATABASE_URL", DEFAULT_URL))
    args = parser.parse_args()
    print(f"load: {os.getloadavg()}")
    rows = run(10_000_000 if args.ten_million else args.cases, repeat=args.repeat, database_url=args.database_url,
               build=not args.skip_build, logins=args.login, drop=args.drop)
    print()
    for measure, figure, target in rows:
        print(f"| {measure} | {target} | {figure} |")
    print(f"load: {os.getloadavg()}")


if __name__ == "__main__":
    main()
