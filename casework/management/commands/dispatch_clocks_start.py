"""``manage.py dispatch_clocks_start``: start the 交办 clock of registered cases that have none.

Run once after upgrading to the 交办 clock (快速批办, issue 13 §5): messages registered before it
existed start their clock now (see :func:`casework.clocks.dispatch_clocks_backfill`). Idempotent.
"""

from django.core.management.base import BaseCommand
from django.utils.translation import gettext as _

from casework.clocks import dispatch_clocks_backfill


class Command(BaseCommand):
    help = "Start the 交办 (dispatch) clock of every registered case that has none running."

    def handle(self, *args, **options):
        count = dispatch_clocks_backfill()
        self.stdout.write(_("已为 %(n)s 件待交办留言启动交办时限。") % {"n": count})
