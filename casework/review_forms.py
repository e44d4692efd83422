"""Forms for the joint-handling, extension, arbitration, merge and key-case panels of the case page.

Each form feeds one service in :mod:`casework.joint`; the services check everything again.
"""

from django import forms
from django.utils.translation import gettext_lazy as _

from accounts import roles
from accounts.models import Unit, User
from casework.forms import DraftForm
from casework.joint import MAX_EXTENSION_DAYS
from casework.text import to_half_width


class VersionedDraftForm(DraftForm):
    """The draft form with the case's ``lock_version`` at load time, so a stale form is refused."""

    lock_version = forms.IntegerField(widget=forms.HiddenInput, required=False)


class CoUnitForm(forms.Form):
    unit = forms.ModelChoiceField(label=_("协办单位"), queryset=Unit.objects.none())
    task = forms.CharField(label=_("协办任务"), widget=forms.Textarea(attrs={"rows": 2}))
    working_days = forms.IntegerField(label=_("协办期限(工作日)"), min_value=1, max_value=30, initial=3)

    def __init__(self, *args, units=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["unit"].queryset = units if units is not None else Unit.objects.none()


class CoUnitReportForm(forms.Form):
    task_id = forms.IntegerField(widget=forms.HiddenInput)
    report = forms.CharField(label=_("协办情况"), widget=forms.Textarea(attrs={"rows": 3}))


class ExtensionRequestForm(forms.Form):
    clock = forms.ChoiceField(label=_("时限"), choices=[("reply", _("答复")), ("sign_for", _("签收"))])
    working_days = forms.IntegerField(label=_("延长(工作日)"), min_value=1, max_value=MAX_EXTENSION_DAYS)
    reason = forms.CharField(label=_("延期理由"), widget=forms.Textarea(attrs={"rows": 2}))


class ExtensionDecisionForm(forms.Form):
    extension_id = forms.IntegerField(widget=forms.HiddenInput)
    decision = forms.ChoiceField(label=_("审批"), choices=[("approve", _("批准")), ("refuse", _("不批准"))])
    note = forms.CharField(label=_("审批意见(不批准时必填)"), required=False,
                           widget=forms.Textarea(attrs={"rows": 2}))


class ReturnRulingForm(forms.Form):
    decision = forms.ChoiceField(
        label=_("裁定"), choices=[("redispatch", _("改派其他单位")), ("send_back", _("发回原单位继续办理"))]
    )
    unit = forms.ModelChoiceField(label=_("改派单位"), queryset=Unit.objects.none(), required=False)
    ruling = forms.CharField(label=_("裁定意见(发回原单位时必填)"), required=False,
                             widget=forms.Textarea(attrs={"rows": 2}))

    def __init__(self, *args, units=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["unit"].queryset = units if units is not None else Unit.objects.none()


class MergeForm(forms.Form):
    main_reference = forms.CharField(label=_("主案件编号"), max_length=40)
    reason = forms.CharField(label=_("说明"), required=False, widget=forms.Textarea(attrs={"rows": 2}))

    def clean_main_reference(self):
        # Typed with a Chinese IME the number may come full-width (field case C23).
        return to_half_width(self.cleaned_data["main_reference"])


class KeyCaseForm(forms.Form):
    leader = forms.ModelChoiceField(label=_("挂帅局领导"), queryset=User.objects.none(), required=False,
                                    help_text=_("留空则取消重点难点标记。"))

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["leader"].queryset = User.objects.filter(groups__name=roles.LEADER, is_active=True)


