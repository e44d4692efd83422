"""Assessment weights, recurring-question topics, the knowledge base and improvement actions.

The assessment figures themselves are not stored: they are computed from the audit events on
demand (:mod:`assessment.selectors`). What is stored here is what people decide: the weights of
the annual score, the topics the office confirmed, standard answers and improvement actions.
"""

from decimal import Decimal

from django.conf import settings
from django.core.validators import MinValueValidator
from django.db import models
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from casework.text import mask_personal_numbers


class AssessmentWeights(models.Model):
    """The weights of the annual score (DESIGN.md §7), editable by superusers.

    The newest row is in force. Rates weigh into a weighted mean of 0–100 points; counts deduct
    points per item. See :func:`assessment.selectors.assessment_annual` for the formula.
    """

    name = models.CharField(_("名称"), max_length=100, default="年度考核权重")
    sign_for_on_time = models.DecimalField(_("按时签收率权重"), max_digits=6, decimal_places=2, default=20,
                                           validators=[MinValueValidator(0)])
    handled_on_time = models.DecimalField(_("按时办结率权重"), max_digits=6, decimal_places=2, default=30,
                                          validators=[MinValueValidator(0)])
    return_rate = models.DecimalField(_("回退率权重(越低越好)"), max_digits=6, decimal_places=2, default=10,
                                      validators=[MinValueValidator(0)])
    send_back_rate = models.DecimalField(_("发回重办率权重(越低越好)"), max_digits=6, decimal_places=2,
                                         default=15, validators=[MinValueValidator(0)])
    satisfaction = models.DecimalField(_("满意率权重"), max_digits=6, decimal_places=2, default=25,
                                       validators=[MinValueValidator(0)])
    per_supervision_notice = models.DecimalField(_("每张督办单扣分"), max_digits=6, decimal_places=2,
                                                 default=Decimal("0.50"), validators=[MinValueValidator(0)])
    per_referral = models.DecimalField(_("每次移交纪检督察扣分"), max_digits=6, decimal_places=2, default=Decimal("2.00"),
                                       validators=[MinValueValidator(0)])
    per_extension = models.DecimalField(_("每次批准延期扣分"), max_digits=6, decimal_places=2, default=Decimal("0.10"),
                                        validators=[MinValueValidator(0)])
    # Issue 13: a 督办单 opened by hand and a referral for poor handling (办理不力) deduct their own
    # points, instead of the general 督办单 / referral deduction.
    per_manual_notice = models.DecimalField(_("每张人工督办单扣分"), max_digits=6, decimal_places=2,
                                            default=Decimal("1.00"), validators=[MinValueValidator(0)])
    per_poor_handling_referral = models.DecimalField(
        _("每次办理不力移交扣分"), max_digits=6, decimal_places=2, default=Decimal("3.00"),
        validators=[MinValueValidator(0)])
    updated_at = models.DateTimeField(_("更新时间"), auto_now=True)
    updated_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True,
                                   on_delete=models.SET_NULL, related_name="+", verbose_name=_("修改人"))

    class Meta:
        verbose_name = _("考核权重")
        verbose_name_plural = _("考核权重")
        ordering = ["-updated_at", "-id"]

    def __str__(self) -> str:
        return self.name


class Topic(models.Model):
    """A group of similar messages (共性问题 candidate), suggested by the grouping or confirmed by the office."""

    class Status(models.TextChoices):
        SUGGESTED = "suggested", _("系统建议")
        CONFIRMED = "confirmed", _("已确认")
        DISMISSED = "dismissed", _("不成立")

    title = models.CharField(_("主题"), max_length=200)
    keywords = models.CharField(_("关键词"), max_length=300, blank=True)
    status = models.CharField(_("状态"), max_length=20, choices=Status.choices,
                              default=Status.SUGGESTED, db_index=True)
    is_common_issue = models.BooleanField(_("共性问题"), default=False, db_index=True)
    heat = models.FloatField(_("热度指数"), default=0, db_index=True)
    message_count = models.PositiveIntegerField(_("留言数"), default=0)
    citizen_count = models.PositiveIntegerField(_("网民数"), default=0)
    likes = models.PositiveIntegerField(_("点赞数"), default=0)
    dislikes = models.PositiveIntegerField(_("反对数"), default=0)
    first_at = models.DateTimeField(_("最早留言"), null=True, blank=True)
    last_at = models.DateTimeField(_("最近留言"), null=True, blank=True)
    article = models.ForeignKey("KnowledgeArticle", null=True, blank=True, on_delete=models.SET_NULL,
                                related_name="topics", verbose_name=_("标准答复"))
    created_at = models.DateTimeField(_("创建时间"), auto_now_add=True)
    reviewed_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True,
                                    on_delete=models.SET_NULL, related_name="+", verbose_name=_("审核人"))
    reviewed_at = models.DateTimeField(_("审核时间"), null=True, blank=True)

    class Meta:
        verbose_name = pgettext_lazy("topic", "留言主题")
        verbose_name_plural = _("留言主题(共性问题)")
        ordering = ["-heat", "-id"]

    def __str__(self) -> str:
        # A label shown to every reader: numbers masked; a reader-scoped view sets ``shown_label``
        # to the title that reader may see (assessment.admin_scope).
        return mask_personal_numbers(getattr(self, "shown_label", None) or self.title)


class TopicMembership(models.Model):
    """A case's place in a topic. A case belongs to at most one topic."""

    topic = models.ForeignKey(Topic, on_delete=models.CASCADE, related_name="memberships")
    case = models.OneToOneField("casework.Case", on_delete=models.CASCADE, related_name="topic_membership",
                                verbose_name=_("留言"))
    similarity = models.FloatField(_("相似度"), default=0)
    added_at = models.DateTimeField(_("加入时间"), auto_now_add=True)

    class Meta:
        verbose_name = _("主题成员")
        verbose_name_plural = _("主题成员")
        ordering = ["topic", "-similarity"]

    def __str__(self) -> str:
        return f"{self.topic_id} · {self.case_id}"


class KnowledgeArticle(models.Model):
    """A standard answer (知识库) that handlers can insert into a reply draft."""

    title = models.CharField(_("标题"), max_length=200)
    body = models.TextField(_("标准答复"))
    policy_basis = models.TextField(_("政策依据"), blank=True)
    keywords = models.CharField(_("关键词"), max_length=300, blank=True,
                                help_text=_("以空格或逗号分隔;留言主题含任一关键词时推荐本答复。"))
    is_active = models.BooleanField(_("启用"), default=True)
    created_at = models.DateTimeField(_("创建时间"), auto_now_add=True)
    updated_at = models.DateTimeField(_("更新时间"), auto_now=True)

    class Meta:
        verbose_name = _("知识库答复")
        verbose_name_plural = _("知识库")
        ordering = ["title"]

    def __str__(self) -> str:
        return self.title


class ImprovementAction(models.Model):
    """A systematic fix of a common issue, assigned to a unit with a due date."""

    class Status(models.TextChoices):
        ASSIGNED = "assigned", _("已交办")
        IN_PROGRESS = "in_progress", _("整改中")
        DONE = "done", _("已完成")

    topic = models.ForeignKey(Topic, on_delete=models.PROTECT, related_name="actions", verbose_name=_("主题"))
    unit = models.ForeignKey("accounts.Unit", on_delete=models.PROTECT, related_name="+",
                             verbose_name=_("责任单位"))
    description = models.TextField(_("整改措施"))
    due_date = models.DateField(_("完成期限"))
    status = models.CharField(_("状态"), max_length=20, choices=Status.choices, default=Status.ASSIGNED)
    started_on = models.DateField(_("实施日期"), help_text=_("措施生效之日;主题的周留言量以此日分前后。"))
    completed_at = models.DateTimeField(_("完成时间"), null=True, blank=True)
    assigned_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+",
                                    verbose_name=_("交办人"))
    created_at = models.DateTimeField(_("创建时间"), auto_now_add=True)

    class Meta:
        verbose_name = _("整改措施")
        verbose_name_plural = _("整改措施")
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.topic} → {self.unit}"


from assessment.alert_models import TopicAlert, TopicAlertRule  # noqa: E402,F401
from assessment.figures_models import KeptFigures  # noqa: E402,F401
