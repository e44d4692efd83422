"""Forms for the case page's action panels. Each form feeds one service."""

from django import forms
from django.utils.translation import gettext_lazy as _

from accounts.models import Unit
from casework.models import Case, FollowUp, MessageType
from casework.text import to_half_width


class ReasonForm(forms.Form):
    reason = forms.CharField(label=_("理由"), widget=forms.Textarea(attrs={"rows": 2}), required=False)


class DispatchForm(forms.Form):
    unit = forms.ModelChoiceField(label=_("承办单位"), queryset=Unit.objects.none())
    message_type = forms.ChoiceField(
        label=_("留言类型"), choices=MessageType.choices, required=False,
        help_text=_("导入时按文字推断,决定答复时限;不对请在交办前更正。"),
    )
    note = forms.CharField(label=_("交办意见"), required=False, widget=forms.Textarea(attrs={"rows": 2}))

    def __init__(self, *args, units=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["unit"].queryset = units if units is not None else Unit.objects.none()


class MessageTypeForm(forms.Form):
    """更正留言类型 after dispatch: the running clocks are recomputed, so a reason is required."""

    message_type = forms.ChoiceField(label=_("留言类型"), choices=MessageType.choices)
    reason = forms.CharField(label=_("更正理由"), widget=forms.Textarea(attrs={"rows": 2}))
    lock_version = forms.IntegerField(widget=forms.HiddenInput)


class DraftForm(forms.Form):
    handling_report = forms.CharField(label=_("办理情况(事实核查)"), widget=forms.Textarea(attrs={"rows": 4}))
    policy_basis = forms.CharField(label=_("政策依据"), required=False, widget=forms.Textarea(attrs={"rows": 2}))
    measures = forms.CharField(label=_("整改措施"), required=False, widget=forms.Textarea(attrs={"rows": 2}))
    reply_text = forms.CharField(label=_("答复草稿"), widget=forms.Textarea(attrs={"rows": 6}))


class CaseRegisterForm(forms.ModelForm):
    """The admin's form to register a message: the platform id is folded to half width (as the
    service stores it) and a duplicate is a form error that keeps the input, not a server error."""

    class Meta:
        model = Case
        fields = ["platform", "external_id"]

    def clean_external_id(self):
        return to_half_width(self.cleaned_data.get("external_id") or "")

    def clean(self):
        cleaned = super().clean()
        platform, external_id = cleaned.get("platform"), cleaned.get("external_id")
        if platform and external_id and Case.objects.filter(platform=platform, external_id=external_id).exists():
            self.add_error("external_id", _("该平台留言编号已存在:%(id)s") % {"id": external_id})
        return cleaned


class PublishForm(forms.Form):
    """Publish the signed draft: where it goes, and which draft the publisher saw (no text field)."""

    where = forms.CharField(label=_("发布位置"), max_length=200)
    draft_id = forms.IntegerField(widget=forms.HiddenInput, required=False)


class ReviseForm(forms.Form):
    """发布前修改: the changed reply and why; it goes back to tiers 2 and 3 as a new version."""

    reply_text = forms.CharField(label=_("修改后的答复"), widget=forms.Textarea(attrs={"rows": 6}))
    reason = forms.CharField(label=_("修改理由(必填)"), widget=forms.Textarea(attrs={"rows": 2}))
    lock_version = forms.IntegerField(widget=forms.HiddenInput, required=False)


class FollowUpForm(forms.Form):
    # No preset rating: the member of staff must choose what the citizen said.
    result = forms.ChoiceField(label=_("回访结果"),
                               choices=[("", _("—— 请选择 ——")), *FollowUp.Result.choices])
    rectification = forms.ChoiceField(label=_("整改情况"), choices=FollowUp.Rectification.choices)
    note = forms.CharField(label=_("说明"), required=False, widget=forms.Textarea(attrs={"rows": 2}))
    reply_untrue = forms.BooleanField(label=_("回访发现答复不实"), required=False)
