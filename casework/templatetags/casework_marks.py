"""Red and amber clock marks, the same on the case list, the case page and the queues.

Red: the running clock's deadline has passed (超期). Amber: at most one working day left (临期).
Each mark carries its words too (剩 3 个工作日, 已超期 2 个工作日), so colour is never the only cue.
"""

from django import template
from django.utils import timezone
from django.utils.html import format_html
from django.utils.translation import gettext as _

from casework import selectors
from casework.selectors import ClockMark

register = template.Library()




def clock_mark_html(*, label: str, mark: ClockMark | None) -> str:
    """Return the HTML of one clock mark: ``<span class="cw-clock cw-overdue">答复:已超期 2 个工作日</span>``."""
    if mark is None:
        return ""
    words = _("%(clock)s:%(left)s") % {"clock": label, "left": mark.text} if label else mark.text
    title = {"overdue": _("超期"), "due_soon": _("临期(一个工作日内到期)"), "ok": ""}[mark.status]
    return format_html('<span class="cw-clock cw-{}" title="{}">{}</span>', mark.status.replace("_", "-"),
                       title, words)


@register.simple_tag
def case_clock_mark(case) -> str:
    """The mark of the clock running on ``case`` now (nothing when no clock runs)."""
    label, due = selectors.case_clock_due(case=case)
    return clock_mark_html(label=label, mark=selectors.clock_mark(due=due, now=timezone.now()))


CLOCK_MARK_CSS = """
.cw-clock { display: inline-block; padding: 1px 6px; border-radius: 3px; white-space: nowrap;
            border: 1px solid transparent; }
.cw-clock.cw-overdue { background: #fde8e8; color: #a61b1b; border-color: #e9a3a3; font-weight: bold; }
.cw-clock.cw-due-soon { background: #fff4d6; color: #7a5200; border-color: #e8c266; font-weight: bold; }
.cw-clock.cw-ok { color: var(--body-fg); }
"""


@register.simple_tag
def clock_mark_css() -> str:
    """The stylesheet of the marks, for a page's ``extrastyle`` block."""
    return format_html("<style>{}</style>", CLOCK_MARK_CSS)
