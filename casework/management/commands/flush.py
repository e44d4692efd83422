"""``manage.py flush``, able to empty the append-only audit table it otherwise could not.

The audit table refuses TRUNCATE (a django-pgtrigger trigger, :class:`casework.models.CaseEvent`);
``flush`` erases the whole database on purpose (the test runner's reset between transactional
tests, an operator's deliberate wipe), so it runs with that one trigger ignored for its own
statements. Nothing else does.
"""

from django.core.management.commands.flush import Command as FlushCommand
import pgtrigger


class Command(FlushCommand):
    def handle(self, **options):
        with pgtrigger.ignore("casework.CaseEvent:caseevent_no_truncate"):
            return super().handle(**options)
