"""``manage.py audit_verify``: run the audit chain check now (beat runs it daily at 03:00)."""

from django.core.management.base import BaseCommand

from casework import audit


class Command(BaseCommand):
    help = "Verify every case's audit chain, its sealed head and the external anchor; record the run."

    def handle(self, **options):
        run = audit.audit_verify_run()
        self.stdout.write(
            f"run {run.pk}: {run.cases_checked} cases, {run.events_checked} events, "
            f"{run.failure_count} failures"
        )
        for failure in run.failures:
            self.stdout.write(f"  {failure['reference'] or failure['case_id']}: {failure['reason']}")
        if run.failure_count:
            raise SystemExit(1)
