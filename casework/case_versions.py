"""The version of a case a page shows, and the refusal of a form that is older than the case.

Every write to a case bumps ``Case.lock_version`` (``services.case_touch`` and every transition)
and appends an audit event. A case page carries ``"<lock_version>.<last event seq>"``; a submit
whose ``lock_version`` is no longer the case's is refused, naming the events recorded since the
page was loaded (who, when, what). Used by the case page's forms (:mod:`casework.admin`).
"""

from __future__ import annotations

from django.utils import timezone
from django.utils.translation import gettext as _

from casework.models import Case, CaseEvent
from casework.services import CaseConflict

CASE_VERSION_FIELD = "case_version"


def case_version(*, case: Case) -> str:
    """The version token of ``case`` as loaded: ``"<lock_version>.<seq of its last event>"``."""
    seq = CaseEvent.objects.filter(case=case).order_by("-seq").values_list("seq", flat=True).first() or 0
    return f"{case.lock_version}.{seq}"


def case_version_check(*, case: Case, seen: str | None) -> None:
    """Refuse a submit made on an older version of ``case``.

    Args:
        case: the case, locked by the caller (``services.case_lock``) inside its transaction.
        seen: the token the page carried (:func:`case_version`); ``None`` or empty: not checked
            (a caller that carries no version, e.g. a script).

    Raises:
        CaseConflict: the case changed since the page was loaded; the message names the events
            recorded since (who, what, when) and says that nothing was saved.
    """
    if not seen:
        return
    version, _sep, seq = seen.partition(".")
    try:
        version, seq = int(version), int(seq or 0)
    except ValueError:
        version, seq = -1, 0
    if version == case.lock_version:
        return
    events = list(
        CaseEvent.objects.filter(case=case, seq__gt=seq).select_related("actor").order_by("seq")[:5]
    )
    if events:
        changes = ";".join(
            _("%(who)s于 %(when)s %(what)s") % {
                "who": (e.actor.full_name or e.actor.get_username()) if e.actor else _("系统"),
                "when": timezone.localtime(e.at).strftime("%Y-%m-%d %H:%M:%S"),
                "what": e.action_label,
            }
            for e in events
        )
    else:
        changes = _("其他用户或系统任务修改了案件")
    raise CaseConflict(
        _("案件 %(ref)s 在您打开页面后已有变化(%(changes)s),您的提交没有保存,填写的内容保留在表单中;"
          "请核对当前情况后再提交。") % {"ref": case.reference, "changes": changes}
    )
