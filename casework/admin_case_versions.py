"""The case page's forms carry the case's version, and a refused submit's input comes back.

Used by :class:`casework.admin.CaseAdmin`: :func:`case_forms_stamp` adds the hidden
``case_version`` (:mod:`casework.case_versions`) to every form of the page and refills the form of
a refused submit from the session; :func:`refused_input_keep` keeps that input when the act view
refuses (stale version, invalid form, refused transition or permission) and redirects.
"""

from __future__ import annotations

from django import forms

from casework.case_versions import CASE_VERSION_FIELD, case_version

REFUSED_KEY = "casework_refused_input"

# Act-view action → the context key of its form on the case page.
ACTION_FORMS = {
    "dispatch": "dispatch_form",
    "save_draft": "draft_form",
    "publish_reply": "publish_form",
    "record_follow_up": "follow_up_form",
    "assign_co_unit": "co_unit_form",
    "co_unit_report": "co_unit_report_form",
    "request_extension": "extension_form",
    "arbitrate_return": "ruling_form",
    "merge": "merge_form",
    "mark_key_case": "key_case_form",
    # issue 13 (casework.supervision_panels.SUPERVISION_FORMS)
    "open_notice": "notice_open_form",
    "refer_poor_handling": "poor_handling_form",
    "decide_proposal": "proposal_form",
}

# Never refilled: they must carry what the page shows now.
_NOT_KEPT = {"csrfmiddlewaretoken", CASE_VERSION_FIELD, "lock_version", "expected_state"}


def refused_input_keep(request, *, case, action: str) -> None:
    """Keep the POSTed input of a refused ``action`` on ``case`` for the next case page."""
    data = {k: v for k, v in request.POST.lists() if k not in _NOT_KEPT}
    request.session[REFUSED_KEY] = {"case": case.pk, "action": action, "data": data}


def case_forms_stamp(request, context: dict, *, case) -> None:
    """Add ``case_version`` to ``context`` and to every form in it; refill a refused form."""
    token = case_version(case=case)
    context[CASE_VERSION_FIELD] = token
    kept = request.session.pop(REFUSED_KEY, None)
    if not kept or kept.get("case") != case.pk:
        kept = None
    page_forms = [v for v in context.values() if isinstance(v, forms.BaseForm)]
    page_forms += [f for _e, f in context.get("extension_decisions", [])]
    for form in page_forms:
        form.fields[CASE_VERSION_FIELD] = forms.CharField(widget=forms.HiddenInput, required=False)
        form.initial[CASE_VERSION_FIELD] = token
    if kept is None:
        return
    data = {k: (v[0] if len(v) == 1 else v) for k, v in kept["data"].items()}
    action = kept["action"]
    target = context.get(ACTION_FORMS.get(action, ""))
    if action == "decide_extension":
        target = next((f for _e, f in context.get("extension_decisions", [])
                       if str(f.initial.get("extension_id")) == str(data.get("extension_id"))), None)
    if isinstance(target, forms.BaseForm):
        target.initial.update({k: v for k, v in data.items() if k in target.fields})
    context["refused_input"] = {"action": action, "reason": data.get("reason", "")}
