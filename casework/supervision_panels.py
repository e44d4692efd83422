"""The case page's 督办与问责 panel (issue 13): open a 督办单, refer for 办理不力, decide a proposal.

:class:`casework.admin.CaseAdmin` adds :func:`case_supervision_panels` to the page context and
sends the panel's posts (through its act view, under the case lock and version check) to
:func:`supervision_perform`. A form is offered only when the user may take its action
(:func:`casework.supervision.may_open_notice`, :func:`casework.supervision.may_refer`); the
services check again and refuse with the reason, and the act view keeps the typed input.
"""

from django import forms
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from casework import supervision
from casework.models import Case, PoorHandlingReason, QualityStep

# Act-view action → the context key of its form (refill of a refused submit) and words for the log.
SUPERVISION_FORMS = {
    "open_notice": "notice_open_form",
    "refer_poor_handling": "poor_handling_form",
    "decide_proposal": "proposal_form",
}
SUPERVISION_ACTIONS = {
    "open_notice": gettext_lazy("开具督办单"),
    "refer_poor_handling": gettext_lazy("移交纪检督察(办理不力)"),
    "decide_proposal": gettext_lazy("确认质量触发的移交"),
}


class NoticeOpenForm(forms.Form):
    content = forms.CharField(label=gettext_lazy("督办内容"), widget=forms.Textarea(attrs={"rows": 3}))
    answer_days = forms.IntegerField(
        label=gettext_lazy("答复时限(工作日,按被督办单位的工作日历)"), initial=2,
        min_value=supervision.ANSWER_DAYS_MIN, max_value=supervision.ANSWER_DAYS_MAX,
    )
    co_units = forms.MultipleChoiceField(label=gettext_lazy("同时督办协办单位"), required=False,
                                         widget=forms.CheckboxSelectMultiple)

    def __init__(self, *args, case: Case, **kwargs):
        super().__init__(*args, **kwargs)
        tasks = case.co_unit_tasks.select_related("unit").exclude(unit_id=case.lead_unit_id)
        self.fields["co_units"].choices = [(str(t.unit_id), t.unit.name) for t in tasks]
        if not self.fields["co_units"].choices:
            del self.fields["co_units"]


class PoorHandlingForm(forms.Form):
    poor_reason = forms.ModelChoiceField(label=gettext_lazy("办理不力事由"), queryset=PoorHandlingReason.objects.none(),
                                    empty_label=gettext_lazy("—— 请选择 ——"))
    statement = forms.CharField(label=gettext_lazy("移交说明(必填)"), widget=forms.Textarea(attrs={"rows": 3}))
    other_cases = forms.MultipleChoiceField(label=gettext_lazy("一并移交该单位的其他案件(移交单位时选择)"),
                                            required=False, widget=forms.CheckboxSelectMultiple)

    def __init__(self, *args, case: Case, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["poor_reason"].queryset = PoorHandlingReason.objects.filter(is_active=True)
        others = supervision.referral_candidate_cases(user=user, case=case)
        self.fields["other_cases"].choices = [(str(c.pk), str(c)) for c in others]
        if not self.fields["other_cases"].choices:
            del self.fields["other_cases"]


class ProposalDecisionForm(forms.Form):
    step = forms.ChoiceField(label=gettext_lazy("提请"))
    decision = forms.ChoiceField(label=gettext_lazy("决定"), widget=forms.RadioSelect, choices=[
        ("confirm", gettext_lazy("确认移交纪检督察")), ("refuse", gettext_lazy("不予移交"))])
    note = forms.CharField(label=gettext_lazy("移交说明或不予移交的理由(必填)"), widget=forms.Textarea(attrs={"rows": 2}))

    def __init__(self, *args, proposals, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["step"].choices = [
            (str(p.pk), _("%(rung)s(第 %(round)s 轮,%(n)s 次)") % {"rung": p.rung.name, "round": p.round, "n": p.count})
            for p in proposals]
        if len(proposals) == 1:
            self.fields["step"].initial = str(proposals[0].pk)


def case_proposals(*, case: Case) -> list[QualityStep]:
    """Return the case's quality steps (newest first), with rung, notice and referral joined."""
    return list(case.quality_steps.select_related("rung", "notice", "referral", "decided_by"))


def case_supervision_panels(*, user, case: Case) -> dict:
    """Return the context of the 督办与问责 panel for ``user`` on ``case``: only the forms he may use."""
    steps = case_proposals(case=case)
    context = {"quality_steps": steps, "now": timezone.now()}
    if supervision.may_open_notice(user=user, case=case):
        context["notice_open_form"] = NoticeOpenForm(case=case)
    if supervision.may_refer(user=user, case=case):
        context["poor_handling_form"] = PoorHandlingForm(case=case, user=user)
        pending = [s for s in steps if s.status == QualityStep.Status.PROPOSED]
        if pending:
            context["proposal_form"] = ProposalDecisionForm(proposals=pending)
    return context


class SupervisionFormInvalid(supervision.SupervisionRefused):
    """A panel form did not validate; ``str(exc)`` lists the fields and their errors."""


def _require(form) -> None:
    if not form.is_valid():
        errors = "; ".join(f"{form.fields[f].label if f in form.fields else f}: {' '.join(e)}"
                           for f, e in form.errors.items())
        raise SupervisionFormInvalid(_("请检查填写内容:%s") % errors)


def supervision_perform(*, user, case: Case, action: str, post) -> str:
    """Perform one panel action on ``case`` with the posted data; return the success message.

    Raises:
        PermissionDenied, casework.supervision.SupervisionRefused: from the services (the act view
            shows the message and keeps the input).
        KeyError: ``action`` is not one of :data:`SUPERVISION_ACTIONS`.
    """
    if action == "open_notice":
        form = NoticeOpenForm(post, case=case)
        _require(form)
        notices = supervision.supervision_notice_open(
            case=case, acting_user=user, content=form.cleaned_data["content"],
            answer_days=form.cleaned_data["answer_days"], co_unit_ids=form.cleaned_data.get("co_units") or ())
        return _("已开具督办单:%(units)s,答复期限 %(due)s。") % {
            "units": "、".join(n.unit.name for n in notices),
            "due": f"{timezone.localtime(notices[0].answer_due_at):%Y-%m-%d %H:%M}"}
    if action == "refer_poor_handling":
        form = PoorHandlingForm(post, case=case, user=user)
        _require(form)
        referral = supervision.referral_poor_handling(
            case=case, acting_user=user, reason=form.cleaned_data["poor_reason"],
            statement=form.cleaned_data["statement"], other_case_ids=form.cleaned_data.get("other_cases") or ())
        n = referral.cases_concerned.count()
        return _("已将%(unit)s移交纪检督察(办理不力:%(reason)s),涉及 %(n)s 件案件。") % {
            "unit": referral.unit.name, "reason": referral.poor_reason.name, "n": n}
    if action == "decide_proposal":
        pending = [s for s in case_proposals(case=case) if s.status == QualityStep.Status.PROPOSED]
        form = ProposalDecisionForm(post, proposals=pending)
        if not pending:
            raise supervision.SupervisionRefused(_("该提请已处理,不能再次确认。"))
        _require(form)
        step = next(s for s in pending if str(s.pk) == form.cleaned_data["step"])
        confirm = form.cleaned_data["decision"] == "confirm"
        supervision.quality_proposal_decide(step=step, acting_user=user, confirm=confirm,
                                            note=form.cleaned_data["note"])
        return _("已确认移交纪检督察。") if confirm else _("已决定不予移交。")
    raise KeyError(action)
