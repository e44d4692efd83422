"""What a member of staff typed into a case-page form that was refused, kept for the next page.

A refused action (a missing reason, a stale page, a condition not met, a permission refusal) ends
in a redirect to the case page with the reason as a message (post/redirect/get). The typed input
goes into the session under the case and the action, and the case page puts it back into the
form it came from, once, so nothing typed is lost (issue 8 §2). Hidden bookkeeping (CSRF token,
``expected_state``, ``lock_version``) is not kept: the page always carries the current values.
"""

SESSION_KEY = "casework_kept_input"
NOT_KEPT = {"csrfmiddlewaretoken", "expected_state", "lock_version"}


def input_keep(*, request, case_id: int, action: str) -> None:
    """Keep the POST data of ``action`` on case ``case_id`` for the next case page."""
    data = {k: v for k, v in request.POST.items() if k not in NOT_KEPT and not k.startswith("_")}
    if not any(str(v).strip() for v in data.values()):
        return
    kept = request.session.get(SESSION_KEY, {})
    kept[str(case_id)] = {"action": action, "data": data}
    request.session[SESSION_KEY] = kept


def input_restore(*, request, case_id: int) -> tuple[str, dict]:
    """Return (action, data) kept for case ``case_id`` and forget it; ("", {}) when none."""
    kept = request.session.get(SESSION_KEY) or {}
    entry = kept.pop(str(case_id), None)
    if entry is None:
        return "", {}
    request.session[SESSION_KEY] = kept
    return entry["action"], entry["data"]


def form_refill(form, data: dict) -> None:
    """Put ``data`` into the unbound ``form`` as its initial values (hidden bookkeeping excluded)."""
    if form is None:
        return
    form.initial.update({k: v for k, v in data.items() if k in form.fields and k not in NOT_KEPT})
