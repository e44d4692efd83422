"""Forms for the case page's action panels. Each form feeds one service."""

from django import forms
from django.utils.translation import gettext_lazy as _

from accounts.models import Unit
from casework.models import Case, FollowUp
from casework.text import to_half_width


class ReasonForm(forms.Form):
    reason = forms.CharField(label=_("理由"), widget=forms.Textarea(attrs={"rows": 2}), required=False)


class DispatchForm(forms.Form):
    unit = forms.ModelChoiceField(label=_("承办单位"), queryset=Unit.objects.none())
    note = forms.CharField(label=_("交办意见"), required=False, widget=forms.Textarea(attrs={"rows": 2}))

    def __init__(self, *args, units=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["unit"].queryset = units if units is not None else Unit.objects.none()


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
    where = forms.CharField(label=_("发布位置"), max_length=200)
    text = forms.CharField(label=_("发布文本"), widget=forms.Textarea(attrs={"rows": 6}))


class FollowUpForm(forms.Form):
    result = forms.ChoiceField(label=_("回访结果"), choices=FollowUp.Result.choices)
    rectification = forms.ChoiceField(label=_("整改情况"), choices=FollowUp.Rectification.choices)
    note = forms.CharField(label=_("说明"), required=False, widget=forms.Textarea(attrs={"rows": 2}))
