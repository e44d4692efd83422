"""Benchmark the CSV import on PostgreSQL: messages per second and peak memory (issue 11 §4).

Usage (from the repository root; the database is dropped and rebuilt each run):

    .venv/bin/python scripts/bench_import.py [--rows 100000] [--small 10000] \
        [--database-url postgres://postgres@127.0.0.1:5432/cw_import]

It writes two CSV files of generated messages (``--small`` and ``--rows`` of them, realistic
subjects and bodies of about 150 characters, 1% bad rows and 0.5% ids repeated across batches),
migrates the database, then imports the small file, the large one, and the large one again
(everything skipped). For each it prints rows, seconds, messages per second and the process's
peak RSS so far (``resource.getrusage``: it only grows, so a flat figure after the large file
means memory does not grow with rows), the CPU seconds of this process and of its PostgreSQL backend (``msg/CPU-s`` = rows / both: what
free cores would do), with the load average before and after: the development machine has 2 cores
shared by other work. The first runs have the intake duplicate check off (the importer's own cost);
a last one imports ``--duplicates-rows`` new messages with it on. ``run(**kw)`` is the part of
``scripts/bench.py``.
"""

import argparse
import csv
import os
from pathlib import Path
import random
import resource
import sys
import tempfile
import time

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SUBJECTS = ("关于小区门口路灯损坏的投诉", "咨询户口迁移需要哪些材料", "建议在学校门口增设红绿灯", "求助:邻居噪音扰民",
            "举报非法营运车辆", "关于办理居住证的咨询")
BODY = ("尊敬的领导:您好!我是本市居民,近期发现{subject}的问题已经持续了一段时间,给周边群众的生活带来了很大不便。"
        "希望有关部门能够尽快核实处理,并给予答复。谢谢!编号{n}。")


def write_csv(path: Path, rows: int, seed: int) -> None:
    rng = random.Random(seed)
    with open(path, "w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["message_id", "user_id", "subject", "body", "submitted_at", "category", "likes", "dislikes"])
        for n in range(rows):
            subject = rng.choice(SUBJECTS)
            message_id = f"B{seed}-{n}"
            at = f"2025-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d} {rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:00"
            if n % 100 == 99:
                at = "某天"  # a bad row: unreadable time
            if n % 200 == 150 and n > 1000:
                message_id = f"B{seed}-{n - 777}"  # a duplicate from an earlier batch
            writer.writerow([message_id, f"U{rng.randint(1, 50000)}", subject, BODY.format(subject=subject, n=n), at,
                             "城乡建设", rng.randint(0, 500), rng.randint(0, 50)])


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _backend_cpu_seconds(connection) -> float | None:
    """CPU seconds used so far by this connection's PostgreSQL backend (local server, Linux), or None."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            (pid,) = cursor.fetchone()
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def measure(*, rows: int = 100_000, small: int = 10_000, database_url: str | None = None,
            duplicates_rows: int = 1_000, out=print) -> list[dict]:
    """Build the database and files, import them, return one dict per run (and print the table).

    Runs: parse only; the small file; the large file; the large file again (all skipped) — with
    the intake duplicate check off (``CASEWORK_INTAKE_DUPLICATES=0``: the importer's own cost);
    then ``duplicates_rows`` new messages with the check on (its cost, measured separately).
    """
    database_url = database_url or os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/cw_import")
    os.environ["DATABASE_URL"] = database_url
    os.environ.pop("REDIS_URL", None)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")
    _database_recreate(database_url)

    import django

    django.setup()
    import logging

    logging.getLogger("casework").setLevel(logging.WARNING)
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connection

    from casework.importing import messages_import, platform_ensure, read_message_rows

    call_command("migrate", verbosity=0)
    platform = platform_ensure()
    folder = Path(tempfile.mkdtemp(prefix="bench-import-"))
    small_file, large_file, dup_file = folder / "small.csv", folder / "large.csv", folder / "dup.csv"
    write_csv(small_file, small, seed=1)
    write_csv(large_file, rows, seed=2)
    write_csv(dup_file, duplicates_rows, seed=3)
    out(f"files: {small:,} rows ({small_file.stat().st_size / 2**20:.1f} MB), "
        f"{rows:,} rows ({large_file.stat().st_size / 2**20:.1f} MB); batch {settings.CASEWORK_IMPORT_BATCH_SIZE}")
    out(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())} ({os.cpu_count()} cores)")
    out(f"peak RSS after setup: {peak_rss_mb():.0f} MB")
    out(f"{'run':<24}{'rows':>9}{'created':>9}{'skipped':>9}{'errors':>7}{'seconds':>9}{'msg/s':>8}"
        f"{'CPU s':>7}{'PG CPU s':>9}{'msg/CPU-s':>10}{'peak RSS':>10}")
    results = []
    started, cpu = time.perf_counter(), time.process_time()
    parsed = sum(1 for _ in read_message_rows(large_file))
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    out(f"{'parse only (large)':<24}{parsed:>9,}{'':>9}{'':>9}{'':>7}{seconds:>9.1f}{parsed / seconds:>8,.0f}"
        f"{cpu:>7.1f}{'':>9}{parsed / cpu:>10,.0f}{peak_rss_mb():>8.0f} MB")
    runs = (("small file", small_file, False), ("large file", large_file, False),
            ("large file again", large_file, False), ("duplicate check on", dup_file, True))
    for label, path, duplicates in runs:
        settings.CASEWORK_INTAKE_DUPLICATES = duplicates
        load_before = os.getloadavg()[0]
        pg_cpu = _backend_cpu_seconds(connection)
        started, cpu = time.perf_counter(), time.process_time()
        report = messages_import(rows_source=path, platform=platform)
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
        pg_after = _backend_cpu_seconds(connection)
        pg = (pg_after - pg_cpu) if pg_cpu is not None and pg_after is not None else float("nan")
        result = {"run": label, "rows": report.rows_read, "created": report.created, "skipped": report.skipped,
                  "errors": report.error_count, "seconds": seconds, "rate": report.rows_read / seconds,
                  "cpu": cpu, "pg_cpu": pg, "rate_cpu": report.rows_read / (cpu + (pg if pg == pg else 0)),
                  "rss_mb": peak_rss_mb(), "load": (load_before, os.getloadavg()[0])}
        results.append(result)
        out(f"{label:<24}{report.rows_read:>9,}{report.created:>9,}{report.skipped:>9,}{report.error_count:>7,}"
            f"{seconds:>9.1f}{result['rate']:>8,.0f}{cpu:>7.1f}{pg:>9.1f}{result['rate_cpu']:>10,.0f}"
            f"{result['rss_mb']:>8.0f} MB")
    out(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    out("msg/CPU-s = rows / (this process's CPU + its PostgreSQL backend's CPU): the rate on free cores")
    for path in (small_file, large_file, dup_file):
        path.unlink()
    folder.rmdir()
    return results


def run(*, import_rows: int | None = None, quick: bool = False, database_url: str | None = None,
        **_ignored) -> list[tuple[str, str, str]]:
    """Benchmark part for ``scripts/bench.py``: ``(measure, figure, target)`` rows.

    ``import_rows`` (default 100,000; 20,000 with ``quick``) rows in the large file, a tenth of
    that in the small one; ``database_url`` the scratch database (dropped and rebuilt).
    """
    rows = import_rows or (20_000 if quick else 100_000)
    url = database_url or os.environ.get("BENCH_IMPORT_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/cw_bench_import")
    results = {r["run"]: r for r in measure(rows=rows, small=max(1, rows // 10), database_url=url,
                                            duplicates_rows=200 if quick else 1_000, out=lambda *a: print(*a, file=sys.stderr))}
    large, again, small_run, dup = (results[k] for k in ("large file", "large file again", "small file",
                                                       "duplicate check on"))
    # The target is measured on the import with the intake duplicate check OFF
    # (CASEWORK_INTAKE_DUPLICATES=0, as bulk archive loads run); the production default is ON, reported below.
    return [
        (f"import from CSV, {large['rows']:,} rows, duplicate check OFF (CASEWORK_INTAKE_DUPLICATES=0), wall",
         f"{large['rate']:,.0f} msg/s ({large['seconds']:.1f} s, load {large['load'][0]:.1f})", "≥ 5,000 msg/s"),
        ("same, per CPU-second (importer + its PostgreSQL backend)",
         f"{large['rate_cpu']:,.0f} msg/CPU-s ({large['cpu']:.1f} + {large['pg_cpu']:.1f} CPU-s)", "≥ 5,000 msg/s"),
        ("import again, everything skipped", f"{again['rate']:,.0f} msg/s", "—"),
        (f"import memory, peak RSS after {small_run['rows']:,} / {large['rows']:,} rows",
         f"{small_run['rss_mb']:.0f} / {large['rss_mb']:.0f} MB", "flat"),
        (f"import with the intake duplicate check ON, the production default ({dup['rows']:,} rows into "
         f"{large['created']:,} near-identical generated messages: a worst case for candidates)",
         f"{dup['rate']:,.0f} msg/s, {dup['rate_cpu']:,.0f} msg/CPU-s", "(not the target's configuration)"),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--small", type=int, default=10_000)
    parser.add_argument("--duplicates-rows", type=int, default=1_000,
                        help="rows imported with the intake duplicate check on, after the others")
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL",
                                                                 "postgres://postgres@127.0.0.1:5432/cw_import"))
    args = parser.parse_args()
    measure(rows=args.rows, small=args.small, database_url=args.database_url, duplicates_rows=args.duplicates_rows)


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


if __name__ == "__main__":
    main()
