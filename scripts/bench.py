"""One benchmark, one table (issue 11 §7): every measure of the issue with its target, and the machine.

Usage (from the repository root; PostgreSQL and Redis on this machine; each part builds and drops
its own scratch database):

    .venv/bin/python scripts/bench.py                  # 1,000,000 cases
    .venv/bin/python scripts/bench.py --cases 10000000 # the 10-million-case figures
    .venv/bin/python scripts/bench.py --quick          # 100,000 cases, short load: a smoke run
    .venv/bin/python scripts/bench.py --only import,load --sessions 50 --seconds 60
    .venv/bin/python scripts/bench.py --only load --load-base http://127.0.0.1:8000 \
        --load-database-url postgres://…/casework     # load a site already served

**The interface of a part.** A part is a script ``scripts/bench_<name>.py`` exposing

    def run(**kw) -> list[tuple[str, str, str]]     # (measure, figure, target) rows

It receives every keyword below and ignores those it does not use: ``cases`` (cases to build),
``quick`` (bool), ``database_url`` (its own scratch database, ``…/cw_bench_<name>``), ``redis_url``,
``sessions``, ``seconds`` and ``think`` (the load part: mean think time, ``None`` for its default
model; it reports that run and a think-0 saturation run, each row naming its model), ``import_rows``. It builds its data itself, prints
progress to stderr, and states in each row's measure what was measured (sizes, counts,
statements). Each part runs in a process of its own (Django is set up once per process, each part
on its own database, with ``DJANGO_DEBUG=0`` unless set), so one part failing, hanging past ``--part-timeout`` or missing prints
"not run" with the reason and the others still run.

Parts: ``sweep`` (escalation sweep, statements per due case: ``scripts/bench_sweep.py``), ``list``
(case list at every role, queries: ``scripts/bench_list.py``), ``assessment``
(``scripts/bench_assessment.py``), ``import`` (``scripts/bench_import.py``), ``load``
(``scripts/load.py``: N staff sessions against ``scripts/serve_production.sh``).

The table is markdown, followed by the machine: cores, load average before and after each part
(the development machine has 2 cores, often shared), PostgreSQL and Python versions.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
from pathlib import Path
import platform
import subprocess
import sys
import time

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = ROOT / "scripts"
PARTS = {
    "sweep": "bench_sweep",
    "list": "bench_list",
    "assessment": "bench_assessment",
    "import": "bench_import",
    "load": "load",
}
# The measures, so a part that did not run still shows its line and target.
EXPECTED = {
    "sweep": [("escalation sweep, 1,000,000 open cases, 10,000 due", "≤ 2 s"),
              ("same at 100,000 open, 1,000 due", "≤ 0.3 s"),
              ("statements per due case", "independent of the number due")],
    "list": [("case list page, 1,000,000 cases, every role", "≤ 150 ms median, ≤ 12 queries"),
             ("case list page at 10,000,000 cases", "≤ 300 ms")],
    "assessment": [("whole-year assessment, 10,000,000 events, the page a leader opens", "≤ 2 s")],
    "import": [("import from CSV", "≥ 5,000 messages/s, memory flat")],
    "load": [("50 concurrent staff sessions, production server", "list p95 ≤ 300 ms, 0 errors, no write lost")],
}
MARK = "BENCH-ROWS "


def part_main(name: str, kw: dict) -> int:
    """Child process: import the part, call ``run(**kw)``, print its rows as one JSON line."""
    sys.path.insert(0, str(SCRIPTS))
    sys.path.insert(0, str(ROOT))
    module = importlib.import_module(PARTS[name])
    runner = getattr(module, "run", None)
    if runner is None:
        print(f"{MARK}{json.dumps({'not_run': f'scripts/{PARTS[name]}.py has no run(**kw)'})}")
        return 0
    rows = runner(**kw)
    print(MARK + json.dumps({"rows": [list(map(str, r)) for r in rows]}, ensure_ascii=False))
    return 0


def run_part(name: str, kw: dict, timeout: float) -> dict:
    """Run one part in a child process; return {"rows": …} or {"not_run": reason}, with load averages."""
    script = SCRIPTS / f"{PARTS[name]}.py"
    before = os.getloadavg()
    started = time.monotonic()
    if not script.exists():
        return {"not_run": f"scripts/{PARTS[name]}.py does not exist", "load": (before, before), "seconds": 0}
    # Measured as served: without DEBUG (which keeps every statement's text in memory and logs it).
    env = {"DJANGO_DEBUG": "0", **os.environ, "PYTHONUNBUFFERED": "1"}
    try:
        done = subprocess.run([sys.executable, __file__, "--part", name, "--kw", json.dumps(kw)], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        result = {"not_run": f"stopped after {timeout:.0f} s (--part-timeout)"}
    else:
        line = next((x for x in done.stdout.splitlines() if x.startswith(MARK)), None)
        if done.returncode == 0 and line:
            result = json.loads(line[len(MARK):])
        else:
            tail = [x for x in (done.stderr or "").strip().splitlines() if x.strip()][-1:] or [f"exit {done.returncode}"]
            result = {"not_run": f"failed: {tail[0][:200]}"}
        logs = Path(os.environ.get("CASEWORK_VAR_DIR", ROOT / "var"))
        logs.mkdir(parents=True, exist_ok=True)
        (logs / f"bench-{name}.log").write_text(done.stdout + "\n--- stderr\n" + done.stderr)
    result["load"] = (before, os.getloadavg())
    result["seconds"] = time.monotonic() - started
    return result


def machine(database_url: str) -> list[str]:
    lines = [f"- cores: {os.cpu_count()}; Python {platform.python_version()}; {platform.platform()}"]
    try:
        import psycopg

        with psycopg.connect(database_url, autocommit=True, connect_timeout=5) as conn:
            (version,) = conn.execute("SHOW server_version").fetchone()
        lines.append(f"- PostgreSQL {version} ({database_url.rsplit('@', 1)[-1]})")
    except Exception as exc:  # the table still prints
        lines.append(f"- PostgreSQL: not reachable ({type(exc).__name__})")
    return lines


def table(results: dict) -> list[str]:
    out = ["| measure | figure | target | part (load average before → after) |", "|---|---|---|---|"]
    for name, result in results.items():
        before, after = result["load"]
        where = f"{name} ({before[0]:.1f} → {after[0]:.1f}, {result['seconds']:.0f} s)"
        if "rows" in result:
            for measure, figure, target in result["rows"]:
                out.append(f"| {measure} | {figure} | {target} | {where} |")
        else:
            for measure, target in EXPECTED[name]:
                out.append(f"| {measure} | not run: {result['not_run']} | {target} | {where} |")
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=1_000_000)
    parser.add_argument("--quick", action="store_true", help="100,000 cases, 20,000 import rows, 20 s of load")
    parser.add_argument("--only", default=",".join(PARTS), help=f"comma-separated parts of {', '.join(PARTS)}")
    parser.add_argument("--sessions", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--think", type=float, default=None,
                        help="load part: mean think time in seconds after a list (default: scripts/load.py's "
                             "DEFAULT_THINK, 5 s; twice after a case page); the part also runs think 0 (saturation)")
    parser.add_argument("--import-rows", type=int)
    parser.add_argument("--database-host", default=os.environ.get("BENCH_DATABASE_HOST", "postgres@127.0.0.1:5432"))
    parser.add_argument("--redis-url", default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/6"))
    parser.add_argument("--load-base", help="load part: a site already served (loopback), instead of serving one")
    parser.add_argument("--load-database-url", help="load part: that site's database (to check the writes)")
    parser.add_argument("--part-timeout", type=float, default=3 * 3600)
    parser.add_argument("--part", help=argparse.SUPPRESS)
    parser.add_argument("--kw", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.part:
        return part_main(args.part, json.loads(args.kw))
    cases = 100_000 if args.quick and args.cases == 1_000_000 else args.cases
    seconds = 20 if args.quick and args.seconds == 60 else args.seconds
    chosen = [p.strip() for p in args.only.split(",") if p.strip()]
    unknown = set(chosen) - set(PARTS)
    if unknown:
        parser.error(f"unknown parts: {', '.join(sorted(unknown))}")
    results = {}
    for name in chosen:
        kw = {"cases": cases, "quick": args.quick, "database_url": f"postgres://{args.database_host}/cw_bench_{name}",
              "redis_url": args.redis_url, "sessions": args.sessions, "seconds": seconds,
              "import_rows": args.import_rows, "think": args.think}
        if name == "load" and args.load_base:
            kw.update(base=args.load_base, database_url=args.load_database_url or kw["database_url"], setup=False)
        print(f"running {name} …", file=sys.stderr, flush=True)
        results[name] = run_part(name, kw, args.part_timeout)
    print(f"## Benchmark ({cases:,} cases{', quick' if args.quick else ''}; {time.strftime('%Y-%m-%d %H:%M %Z')})\n")
    print("\n".join(table(results)))
    print()
    print("\n".join(machine(f"postgres://{args.database_host}/postgres")))
    print(f"- load average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
