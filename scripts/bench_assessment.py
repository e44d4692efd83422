"""Benchmark of the assessment: metrics over 1,000,000 cases / 10,000,000 events, and topic grouping.

Usage (PostgreSQL only for the metrics part; builds a dedicated database, default cw_bench_assess):

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/cw_bench_assess \\
        .venv/bin/python scripts/bench_assessment.py [--cases 1000000] [--units 100] [--skip-build]

The data are generated in SQL with generate_series: ``--units`` district units under one city
bureau; each case has 10 audit events during 2025 (register, dispatch, accept, feedback, office and
leader approval, publication, follow-up and archive; every 30th case is returned and re-dispatched
to the next unit instead of being archived; every 7th feedback is sent back once instead of
being approved by the leader). Sign-for and reply times vary so that some are late, follow-up
results cycle through 满意/基本满意/不满意/未联系上. Prints the time of one unit-year report, of all
units' reports one by one, of the whole annual assessment (one pass, ranked), and the topic
grouping throughput on the 4,326 real messages. Then the refresh of the kept figures (issue 11 §5,
``assessment.figures_store``) and the report a leader opens, which reads them.
"""

import argparse
import os
from pathlib import Path
import sys
import time

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")
if __name__ == "__main__":  # imported by scripts/bench.py, run() sets the database up first
    import django

    django.setup()

BUILD = """
TRUNCATE casework_caseevent, casework_case RESTART IDENTITY CASCADE;
DELETE FROM accounts_unit WHERE code LIKE 'bench-%%';
INSERT INTO accounts_unit (name, code, kind, function, path, email, keywords, is_active)
VALUES ('基准市局', 'bench-city', 'bureau', '', '', '', '', true);
UPDATE accounts_unit SET path = '.' || id || '.' WHERE code = 'bench-city';
INSERT INTO accounts_unit (name, code, kind, function, parent_id, path, email, keywords, is_active)
SELECT '基准分局' || g, 'bench-u' || g, 'district', '', c.id, '', '', '', true
FROM generate_series(1, %(units)s) g, accounts_unit c WHERE c.code = 'bench-city';
UPDATE accounts_unit u SET path = c.path || u.id || '.' FROM accounts_unit c
WHERE c.code = 'bench-city' AND u.code LIKE 'bench-u%%';
INSERT INTO casework_platform (name, code, url) VALUES ('基准平台', 'bench', '') ON CONFLICT DO NOTHING;

CREATE TEMP TABLE bench_units AS
SELECT row_number() OVER (ORDER BY id) - 1 AS k, id FROM accounts_unit WHERE code LIKE 'bench-u%%';

INSERT INTO casework_case (id, reference, external_id, subject, body, submitted_at, citizen_name, citizen_contact,
  message_type, category, state, lead_unit_id, handling_round, dispatched_at, accepted_at, feedback_at,
  sign_for_due_at, reply_due_at, published_reply, published_at, published_where, archived_at, closing_reason,
  created_at, updated_at, platform_id, is_key_case, lock_version)
SELECT i, 'B' || i, 'B' || i, '基准留言 ' || i, '内容', t0, 'u' || (i %% 50000), '', 'consult', '',
  CASE WHEN i %% 30 = 0 THEN 'replied' ELSE 'archived' END,
  (SELECT id FROM bench_units WHERE k = (CASE WHEN i %% 30 = 0 THEN i + 1 ELSE i END) %% %(units)s),
  CASE WHEN i %% 30 = 0 THEN 2 ELSE 1 END, t0, t0, t0, t0 + interval '1 day', t0 + interval '5 days',
  '答复', t0 + interval '6 days', '平台', NULL, '', t0, t0, (SELECT id FROM casework_platform WHERE code = 'bench'),
  false, 0
FROM (SELECT i, timestamptz '2025-01-01 08:00+08' + (i * interval '31 seconds') AS t0
      FROM generate_series(1, %(cases)s) i) s;

INSERT INTO casework_caseevent (case_id, seq, action, from_state, to_state, at, reason, payload, prev_hash, hash)
SELECT c.i, e.seq, e.action, '', '', c.t0 + e.off, '', e.payload, lpad(to_hex(c.i * 16 + e.seq - 1), 64, '0'),
       lpad(to_hex(c.i * 16 + e.seq), 64, '0')
FROM (SELECT i, timestamptz '2025-01-01 08:00+08' + (i * interval '31 seconds') AS t0,
             (SELECT id FROM bench_units WHERE k = i %% %(units)s) AS u1,
             (SELECT id FROM bench_units WHERE k = (i + 1) %% %(units)s) AS u2
      FROM generate_series(1, %(cases)s) i) c
CROSS JOIN LATERAL (VALUES
  (1, 'register', interval '0', '{}'::jsonb),
  (2, 'dispatch', interval '1 hour', jsonb_build_object('unit_id', c.u1,
      'dispatched_at', to_char(c.t0 + interval '1 hour', 'YYYY-MM-DD"T"HH24:MI:SSOF":00"'),
      'sign_for_due_at', to_char(c.t0 + interval '25 hours', 'YYYY-MM-DD"T"HH24:MI:SSOF":00"'),
      'reply_due_at', to_char(c.t0 + interval '5 days 1 hour', 'YYYY-MM-DD"T"HH24:MI:SSOF":00"'))),
  (3, CASE WHEN c.i %% 30 = 0 THEN 'return_to_office' ELSE 'accept' END,
      interval '1 hour' * (2 + c.i %% 37), CASE WHEN c.i %% 30 = 0 THEN jsonb_build_object('unit_id', c.u1) ELSE '{}'::jsonb END),
  (4, CASE WHEN c.i %% 30 = 0 THEN 'dispatch' ELSE 'submit_feedback' END, interval '1 day' * (1 + c.i %% 7) + interval '2 days',
      CASE WHEN c.i %% 30 = 0 THEN jsonb_build_object('unit_id', c.u2,
      'sign_for_due_at', to_char(c.t0 + interval '5 days', 'YYYY-MM-DD"T"HH24:MI:SSOF":00"'),
      'reply_due_at', to_char(c.t0 + interval '9 days', 'YYYY-MM-DD"T"HH24:MI:SSOF":00"')) ELSE '{}'::jsonb END),
  (5, CASE WHEN c.i %% 30 = 0 THEN 'accept' ELSE 'office_approve' END, interval '8 days', '{}'::jsonb),
  (6, CASE WHEN c.i %% 30 = 0 THEN 'submit_feedback' WHEN c.i %% 7 = 0 THEN 'leader_send_back' ELSE 'leader_approve' END,
      interval '9 days', '{}'::jsonb),
  (7, CASE WHEN c.i %% 30 = 0 THEN 'office_approve' WHEN c.i %% 7 = 0 THEN 'submit_feedback' ELSE 'draft_saved' END,
      interval '10 days', '{}'::jsonb),
  (8, CASE WHEN c.i %% 30 = 0 THEN 'leader_approve' ELSE 'publish_reply' END, interval '11 days', '{}'::jsonb),
  (9, CASE WHEN c.i %% 30 = 0 THEN 'publish_reply' ELSE 'record_follow_up' END, interval '12 days',
      jsonb_build_object('result', (ARRAY['satisfied','basically_satisfied','unsatisfied','unreachable'])[1 + c.i %% 4])),
  (10, CASE WHEN c.i %% 30 = 0 THEN 'record_follow_up' ELSE 'archive' END, interval '13 days',
      jsonb_build_object('result', (ARRAY['satisfied','basically_satisfied','unsatisfied','unreachable'])[1 + c.i %% 4]))
) AS e(seq, action, off, payload);
SELECT setval(pg_get_serial_sequence('casework_case', 'id'), %(cases)s);
"""


def build(cases: int, units: int) -> float:
    """Build ``cases`` cases with 10 audit events each over ``units`` units (SQL); returns the seconds."""
    from django.db import connection

    started = time.perf_counter()
    with connection.cursor() as cur:
        cur.execute("SET maintenance_work_mem = '1GB'")
        sql = BUILD
        cur.execute("SELECT EXISTS (SELECT 1 FROM casework_caseevent)")
        if not cur.fetchone()[0]:
            # A fresh database: nothing to empty (the audit log refuses TRUNCATE, pgtrigger).
            sql = sql.replace("TRUNCATE casework_caseevent, casework_case RESTART IDENTITY CASCADE;\n", "")
        else:
            sys.exit("The audit log refuses TRUNCATE: build into a fresh database (drop and create it).")
        cur.execute(sql % {"cases": cases, "units": units})
        cur.execute("ANALYZE casework_case")
        cur.execute("ANALYZE casework_caseevent")
        cur.execute("SELECT count(*) FROM casework_caseevent")
        n_events = cur.fetchone()[0]
    seconds = time.perf_counter() - started
    print(f"built {cases:,} cases and {n_events:,} events in {seconds:.0f} s")
    return seconds


def bench_metrics(units: int) -> None:
    from django.db import transaction

    from accounts.models import Unit
    from assessment.facts import AssessmentFacts, Period
    from assessment.selectors import ROWS, _aggregate, assessment_annual

    year = Period.year(2025)
    unit_ids = list(Unit.objects.filter(code__startswith="bench-u").order_by("id").values_list("id", flat=True))
    with transaction.atomic():
        started = time.perf_counter()
        with AssessmentFacts(period=year, unit_ids=[unit_ids[0]]) as f:
            figures = {name: _aggregate(f, name) for name in ROWS}
        one = time.perf_counter() - started
    print(f"one unit-year report (all metrics, unit {unit_ids[0]}): {one:.2f} s")
    print("   ", {k: (v[unit_ids[0]].value if unit_ids[0] in v else None) for k, v in figures.items()})
    with transaction.atomic():
        started = time.perf_counter()
        times = []
        for uid in unit_ids[:10]:
            t0 = time.perf_counter()
            with AssessmentFacts(period=year, unit_ids=[uid]) as f:
                for name in ROWS:
                    _aggregate(f, name)
            times.append(time.perf_counter() - t0)
        print(f"unit-year reports, 10 units one by one: mean {sum(times) / len(times):.2f} s, "
              f"max {max(times):.2f} s")
    with transaction.atomic():
        started = time.perf_counter()
        rows = assessment_annual(period=year)
        whole = time.perf_counter() - started
    print(f"whole annual assessment ({len(rows)} units ranked, all metrics, one pass): {whole:.2f} s")
    print("    top 3:", [(r.unit.name, r.score, r.rank) for r in rows[:3]])


def bench_kept(repeat: int = 5) -> list[tuple[str, str, str]]:
    """Time the background refresh of the kept figures (issue 11 §5) and the report a leader opens.

    Returns ``[(measure, figure, target)]`` (for ``scripts/bench.py``).
    """
    import statistics

    from django.conf import settings
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from accounts.models import User
    from assessment.facts import Period
    from assessment.figures_store import figures_refresh

    settings.ALLOWED_HOSTS = ["*"]
    started = time.perf_counter()
    kept = figures_refresh(period=Period.year(2025))
    refresh = time.perf_counter() - started
    print(f"kept figures refresh (whole year, every unit, in the background): {refresh:.1f} s")
    leader = User.objects.filter(username="bench-leader").first() or User.objects.create_superuser(
        "bench-leader", "bench-leader@bureau.invalid", "x")
    client = Client()
    client.force_login(leader)
    url = "/admin/assessment/report/?year=2025"
    client.get(url)
    times, queries = [], 0
    for _ in range(repeat):
        with CaptureQueriesContext(connection) as ctx:
            t0 = time.perf_counter()
            response = client.get(url)
            times.append(time.perf_counter() - t0)
        queries = len(ctx.captured_queries)
    if response.status_code != 200:
        raise RuntimeError(f"the report answered HTTP {response.status_code}, not 200")
    med = statistics.median(times)
    print(f"report a leader opens (kept figures of {kept.computed_at:%H:%M}): {med * 1000:.0f} ms median "
          f"({min(times) * 1000:.0f}–{max(times) * 1000:.0f}), {queries} queries, HTTP {response.status_code}")
    return [("assessment report a leader opens (kept figures)", f"{med * 1000:.0f} ms median", "≤ 2 s"),
            ("kept figures refresh, whole year (background)", f"{refresh:.1f} s", "every 10 min")]


def bench_topics() -> None:
    from assessment.management.commands.topics_report import DEFAULT_FILE, messages_read
    from assessment.topics import topics_group

    messages = messages_read(DEFAULT_FILE)
    started = time.perf_counter()
    groups = topics_group(messages)
    elapsed = time.perf_counter() - started
    print(f"topic grouping: {len(messages)} messages in {elapsed:.1f} s = {len(messages) / elapsed:.0f} msgs/s "
          f"({len(groups)} topics)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=1_000_000)
    parser.add_argument("--units", type=int, default=100)
    parser.add_argument("--skip-build", action="store_true")
    parser.add_argument("--topics-only", action="store_true")
    args = parser.parse_args()
    from django.core.management import call_command
    from django.db import connection

    if not args.topics_only:
        if connection.vendor != "postgresql":
            sys.exit("Set DATABASE_URL to a PostgreSQL database (e.g. cw_bench_assess).")
        if not args.skip_build:
            call_command("migrate", verbosity=0)
            build(args.cases, args.units)
        bench_metrics(args.units)
        bench_kept()
    bench_topics()


def run(*, database_url: str, cases: int = 1_000_000, quick: bool = False, units: int = 97,
        **_ignored) -> list[tuple[str, str, str]]:
    """The ``assessment`` part of ``scripts/bench.py``: build, then time the report a leader opens.

    Args:
        database_url: a scratch PostgreSQL database (dropped and created here, dropped at the end).
        cases: cases to build, 10 audit events each (1,000,000 → 10,000,000 events); ``quick``: 100,000.
        units: district units the cases are spread over.
    Returns ``[(measure, figure, target)]``: the build, the kept figures' refresh and the report.
    """
    import dj_database_url
    import django
    import psycopg

    cases = 100_000 if quick else cases
    cfg = dj_database_url.parse(database_url)
    admin = dict(host=cfg["HOST"] or "127.0.0.1", port=cfg["PORT"] or 5432, user=cfg["USER"] or "postgres",
                 dbname="postgres", autocommit=True)
    with psycopg.connect(**admin) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{cfg["NAME"]}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{cfg["NAME"]}"')
    os.environ["DATABASE_URL"] = database_url
    os.environ.pop("REDIS_URL", None)
    django.setup()
    from django.core.management import call_command
    from django.db import connections

    try:
        call_command("migrate", verbosity=0)
        seconds = build(cases, units)
        rows = [(f"building {cases:,} cases and {cases * 10:,} audit events (generate_series)", f"{seconds:.0f} s", "—")]
        kept = bench_kept()
        rows += [(f"{m}, {cases * 10:,} events, {units} units", f, t) for m, f, t in kept]
        return rows
    finally:
        connections.close_all()
        with psycopg.connect(**admin) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{cfg["NAME"]}" WITH (FORCE)')


if __name__ == "__main__":
    main()
