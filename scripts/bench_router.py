"""Benchmark the dispatch model (issue 12 §1): full training time and one suggestion's latency.

Usage (from the repository root; no database needed):

    .venv/bin/python scripts/bench_router.py [--suggestions 200]

Trains :class:`casework.router.Router` on both bundled labelled files
(``casework/data/messages/fj2_*.csv.gz``, 6,327 messages), as ``router_train`` fits its final model,
and prints the seconds (wall and CPU) of the jieba cut and of the fit, and the model's size; then
times ``Router.suggest`` (jieba cut, vectorising, decision, confidences and explanation words) on
``--suggestions`` messages of the files, printing p50/p95/max in wall and CPU milliseconds;
``--with-cv`` then also times the whole ``train_with_scores`` that ``router_train`` runs (3-fold grouped CV for the stored scores, final fit, temperature). The
development machine has 2 cores shared by other work, so the load average is printed too: CPU
figures are what one free core does.
"""

import argparse
import os
from pathlib import Path
import sys
import time

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suggestions", type=int, default=200)
    parser.add_argument("--with-cv", action="store_true",
                        help="also time train_with_scores (what router_train runs: 3-fold grouped CV, "
                             "the final fit and the temperature)")
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")
    import django

    django.setup()
    import numpy as np

    from casework.management.commands.router_eval import labelled_rows
    from casework.router import Router, train_with_scores, words_of

    data = ROOT / "casework" / "data" / "messages"
    texts, labels = [], []
    for name in ("fj2_classified.csv.gz", "fj2_body_category_only.csv.gz"):
        t, lab = labelled_rows(str(data / name), None)
        texts += t
        labels += lab
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())} ({os.cpu_count()} cores)")
    wall, cpu = time.perf_counter(), time.process_time()
    cut = [words_of(t) for t in texts]
    cut_wall, cut_cpu = time.perf_counter() - wall, time.process_time() - cpu
    wall, cpu = time.perf_counter(), time.process_time()
    router = Router()
    router.fit_matrix(texts, labels, cut=cut)
    fit_wall, fit_cpu = time.perf_counter() - wall, time.process_time() - cpu
    size = len(router.dumps())
    print(f"training on {len(texts):,} messages: jieba {cut_wall:.1f} s wall / {cut_cpu:.1f} s CPU, "
          f"fit {fit_wall:.1f} s wall / {fit_cpu:.1f} s CPU; model {size / 2**20:.1f} MB")
    rng = np.random.default_rng(0)
    sample = [texts[i] for i in rng.choice(len(texts), size=min(args.suggestions, len(texts)), replace=False)]
    router.suggest(sample[0])  # the first call builds the feature-name table once per process
    walls, cpus = [], []
    for text in sample:
        wall, cpu = time.perf_counter(), time.process_time()
        router.suggest(text)
        walls.append((time.perf_counter() - wall) * 1000)
        cpus.append((time.process_time() - cpu) * 1000)
    for name, values in (("wall", walls), ("CPU", cpus)):
        p50, p95 = np.percentile(values, [50, 95])
        print(f"suggest ({len(sample)} messages), {name} ms: p50 {p50:.1f}, p95 {p95:.1f}, max {max(values):.1f}")
    if args.with_cv:
        wall, cpu = time.perf_counter(), time.process_time()
        _r, scores, _s = train_with_scores(texts, labels)
        print(f"train_with_scores (router_train): {time.perf_counter() - wall:.1f} s wall / "
              f"{time.process_time() - cpu:.1f} s CPU; 3-fold macro-F1 {scores.macro_f1:.4f}, top-3 {scores.top3:.4f}")
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
