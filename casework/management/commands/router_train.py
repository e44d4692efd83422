"""``manage.py router_train``: retrain the dispatch-suggestion model on the archive now.

The same as the weekly beat task ``casework.router_train``; prints the stored model's figures.
"""

from django.core.management.base import BaseCommand

from casework import router_service


class Command(BaseCommand):
    help = "Train the dispatch-suggestion model on the archived cases and activate it."

    def add_arguments(self, parser):
        parser.add_argument("--folds", type=int, default=router_service.FOLDS)

    def handle(self, *args, folds, **options):
        row = router_service.router_train(folds=folds)
        if row is None:
            self.stdout.write("too little history: no model trained; the keyword catalogue stays in use")
            return
        self.stdout.write(
            f"model {row.pk}: {row.n_cases} cases, {row.n_units} units, {row.size_bytes} bytes, "
            f"{row.seconds:.1f} s; cross-validated macro-F1 {row.macro_f1:.4f}, micro-F1 {row.micro_f1:.4f}, "
            f"top-3 {row.top3:.4f}"
        )
