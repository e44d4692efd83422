"""The closed loop's states and the message types, below every casework model that names them."""

from django.db import models
from django.utils.translation import gettext_lazy as _


class MessageType(models.TextChoices):
    CONSULT = "consult", _("咨询")
    HELP = "help", _("求助")
    SUGGEST = "suggest", _("建议")
    COMPLAIN = "complain", _("投诉")
    REPORT = "report", _("举报")
    OTHER = "other", _("其他")


class State(models.TextChoices):
    REGISTERED = "registered", _("已登记·待交办")
    DISPATCHED = "dispatched", _("已交办·待签收")
    HANDLING = "handling", _("承办中")
    OFFICE_REVIEW = "office_review", _("网评办审核")
    LEADER_REVIEW = "leader_review", _("分管局领导审签")
    APPROVED = "approved", _("待发布")
    REPLIED = "replied", _("已回复·督办回访")
    ARCHIVED = "archived", _("已归档")


ACTIVE_STATES = [
    State.DISPATCHED,
    State.HANDLING,
    State.OFFICE_REVIEW,
    State.LEADER_REVIEW,
    State.APPROVED,
]
