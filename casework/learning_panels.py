"""Case-page panels learned from the archive (issue 12): dispatch suggestion, duplicates, 类案参考.

:func:`case_learning_panels` adds their context to the case page (called from
``CaseAdmin._panels``); the templates are the includes ``admin/casework/case/learning_*.html``.
"""

from __future__ import annotations

from django import forms

from accounts.models import User
from casework.forms import DispatchForm
from casework.models import Case, DuplicateFlag, State
from casework.router_service import dispatch_suggestion
from casework.selectors import user_can_see_case, user_may_act
from casework.similar import similar_replies

SOURCES = ("model", "catalogue", "none")


class SuggestionSeenForm(forms.Form):
    """Hidden fields of the dispatch form: the suggestion the dispatcher saw (for the acceptance rate)."""

    suggested_unit_id = forms.IntegerField(required=False, widget=forms.HiddenInput)
    suggestion_source = forms.ChoiceField(choices=[(s, s) for s in SOURCES], required=False,
                                          widget=forms.HiddenInput)
    suggestion_confidence = forms.FloatField(required=False, min_value=0, max_value=1, widget=forms.HiddenInput)
    suggestion_model_id = forms.IntegerField(required=False, widget=forms.HiddenInput)


def suggestion_seen_form(suggestion, *, prefix: str | None = None) -> SuggestionSeenForm:
    """The hidden fields carrying ``suggestion`` (a :class:`~casework.router_service.Suggestion`).

    ``prefix`` tells the rows of the bulk dispatch page apart (one form per message).
    """
    return SuggestionSeenForm(prefix=prefix, initial={
        "suggested_unit_id": suggestion.unit.pk if suggestion.unit else None,
        "suggestion_source": suggestion.source,
        "suggestion_confidence": round(suggestion.confidence, 4) if suggestion.confidence is not None else None,
        "suggestion_model_id": suggestion.model_id,
    })


def suggestion_from_post(post, *, prefix: str | None = None) -> dict | None:
    """Return the suggestion recorded with a dispatch from the dispatch form's hidden fields, or None.

    Args:
        post: the submitted data (``request.POST``).
        prefix: the row's prefix on the bulk dispatch page (as given to :func:`suggestion_seen_form`).
    Malformed hidden fields (a hand-made post) give None: the dispatch is recorded without a suggestion.
    """
    form = SuggestionSeenForm(post, prefix=prefix)
    if not form.is_valid() or not form.cleaned_data.get("suggested_unit_id"):
        return None
    d = form.cleaned_data
    return {"unit_id": d["suggested_unit_id"], "source": d.get("suggestion_source") or "",
            "confidence": d.get("suggestion_confidence"), "model_id": d.get("suggestion_model_id")}


def case_learning_panels(*, user: User, case: Case, context: dict, units) -> dict:
    """Return the extra context of the case page for ``user``.

    Keys: ``dispatch_suggestion`` and ``suggestion_form`` (and ``dispatch_form`` preselected on
    the suggested unit) when the dispatch form is shown; ``duplicate_flags`` (flags whose repeated
    case ``user`` may see) while the case is registered; ``similar_replies`` when the draft form
    is shown.
    """
    extra: dict = {}
    if context.get("dispatch_form") is not None:
        suggestion = dispatch_suggestion(case=case, units=units)
        extra["dispatch_suggestion"] = suggestion
        extra["suggestion_form"] = suggestion_seen_form(suggestion)
        if suggestion.unit is not None:
            extra["dispatch_form"] = DispatchForm(units=units, initial={"unit": suggestion.unit.pk})
    if case.state == State.REGISTERED:
        flags = [f for f in DuplicateFlag.objects.filter(case=case).select_related("repeats")
                 if user_can_see_case(user=user, case=f.repeats)]
        extra["duplicate_flags"] = flags
        extra["may_merge"] = user_may_act(user=user, case=case, perm="merge_case", scope="case")
    if context.get("draft_form") is not None:
        extra["similar_replies"] = similar_replies(user=user, case=case)
    return extra
