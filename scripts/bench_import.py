"""Benchmark the CSV import on PostgreSQL: messages per second and peak memory (issue 11 §4).

Usage (from the repository root; the database is dropped and rebuilt each run):

    .venv/bin/python scripts/bench_import.py [--rows 100000] [--small 10000] \
        [--database-url postgres://postgres@127.0.0.1:5432/cw_import]

It writes two CSV files of generated messages (``--small`` and ``--rows`` of them, realistic
subjects and bodies of about 150 characters, 1% bad rows and 0.5% ids repeated across batches),
migrates the database, then imports the small file, the large one, and the large one again
(everything skipped), with the intake duplicate check on (default) or off (``--duplicates off``).
For each it prints rows, seconds, messages per second and the process's
peak RSS so far (``resource.getrusage``: it only grows, so a flat figure after the large file
means memory does not grow with rows), the CPU seconds of this process (``msg/CPU-s`` is what one
free core would do for the Python side), with the load average before and after: the development
machine has 2 cores shared by other work.
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--small", type=int, default=10_000)
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL",
                                                                 "postgres://postgres@127.0.0.1:5432/cw_import"))
    parser.add_argument("--duplicates", choices=("on", "off"), default="on",
                        help="the intake duplicate check (CASEWORK_INTAKE_DUPLICATES) on or off")
    args = parser.parse_args()

    os.environ["DATABASE_URL"] = args.database_url
    os.environ.pop("REDIS_URL", None)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")
    _database_recreate(args.database_url)

    import django

    django.setup()
    import logging

    logging.getLogger("casework").setLevel(logging.WARNING)
    from django.conf import settings
    from django.core.management import call_command

    from casework.importing import messages_import, platform_ensure, read_message_rows

    settings.CASEWORK_INTAKE_DUPLICATES = args.duplicates == "on"
    call_command("migrate", verbosity=0)
    platform = platform_ensure()
    folder = Path(tempfile.mkdtemp(prefix="bench-import-"))
    small, large = folder / "small.csv", folder / "large.csv"
    write_csv(small, args.small, seed=1)
    write_csv(large, args.rows, seed=2)
    print(f"files: {args.small:,} rows ({small.stat().st_size / 2**20:.1f} MB), "
          f"{args.rows:,} rows ({large.stat().st_size / 2**20:.1f} MB); batch {settings.CASEWORK_IMPORT_BATCH_SIZE}")
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())} ({os.cpu_count()} cores)")
    print(f"peak RSS after setup: {peak_rss_mb():.0f} MB")
    print(f"{'run':<20}{'rows':>9}{'created':>9}{'skipped':>9}{'errors':>7}{'seconds':>9}{'msg/s':>8}"
          f"{'CPU s':>7}{'msg/CPU-s':>10}{'peak RSS':>10}")
    started, cpu = time.perf_counter(), time.process_time()
    rows = sum(1 for _ in read_message_rows(large))
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    print(f"{'parse only (large)':<20}{rows:>9,}{'':>9}{'':>9}{'':>7}{seconds:>9.1f}{rows / seconds:>8,.0f}"
          f"{cpu:>7.1f}{rows / cpu:>10,.0f}{peak_rss_mb():>8.0f} MB")
    for label, path in (("small file", small), ("large file", large), ("large file again", large)):
        started, cpu = time.perf_counter(), time.process_time()
        report = messages_import(rows_source=path, platform=platform)
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
        print(f"{label:<20}{report.rows_read:>9,}{report.created:>9,}{report.skipped:>9,}{report.error_count:>7,}"
              f"{seconds:>9.1f}{report.rows_read / seconds:>8,.0f}{cpu:>7.1f}{report.rows_read / cpu:>10,.0f}"
              f"{peak_rss_mb():>8.0f} MB")
    from casework.models import DuplicateFlag

    print(f"intake duplicate check: {args.duplicates}; flags written: {DuplicateFlag.objects.count():,}")
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    for path in (small, large):
        path.unlink()
    folder.rmdir()


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
