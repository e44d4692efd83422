"""Topic alerts (未诉先办, issue 12): the rule's parameters and the alerts raised.

Imported at the end of :mod:`assessment.models`, so these are ordinary models of the assessment app.
"""

from django.core.validators import MinValueValidator
from django.db import models
from django.utils.translation import gettext_lazy as _


class TopicAlertRule(models.Model):
    """The parameters of the weekly-rise rule (:mod:`assessment.alerts`); the newest row is in force."""

    baseline_weeks = models.PositiveSmallIntegerField(
        _("基线周数"), default=8, validators=[MinValueValidator(1)],
        help_text=_("基线 = 本周之前这么多周的周均留言量(无留言的周按 0 计)。"))
    ratio = models.FloatField(_("倍数"), default=3.0, validators=[MinValueValidator(1.0)],
                              help_text=_("本周留言量达到基线的这么多倍(基线不足 1 按 1 计)才预警。"))
    min_count = models.PositiveSmallIntegerField(_("最少留言数"), default=5, validators=[MinValueValidator(1)],
                                                 help_text=_("本周留言量至少这么多条才预警。"))
    lookback_weeks = models.PositiveSmallIntegerField(
        _("补报周数"), default=2, validators=[MinValueValidator(1)],
        help_text=_("巡检只为最近这么多周内开始的上升发预警,更早的不补发。"))
    enabled = models.BooleanField(_("启用"), default=True)
    updated_at = models.DateTimeField(_("修改时间"), auto_now=True)

    class Meta:
        verbose_name = _("未诉先办预警规则")
        verbose_name_plural = _("未诉先办预警规则")
        ordering = ["-updated_at", "-id"]

    def __str__(self) -> str:
        return f"×{self.ratio} / {self.baseline_weeks} 周 / ≥{self.min_count}"


class TopicAlert(models.Model):
    """One rise of a topic's weekly volume above its baseline; alerted once (e-mail + dashboard mark)."""

    topic = models.ForeignKey("assessment.Topic", on_delete=models.CASCADE, related_name="alerts",
                              verbose_name=_("主题"))
    week_start = models.DateField(_("上升开始周(周一)"))
    count = models.PositiveIntegerField(_("当周留言数"))
    baseline = models.FloatField(_("基线周均"))
    ended_week = models.DateField(_("回落周"), null=True, blank=True)
    created_at = models.DateTimeField(_("预警时间"), auto_now_add=True)

    class Meta:
        verbose_name = _("未诉先办预警")
        verbose_name_plural = _("未诉先办预警")
        ordering = ["-week_start", "-id"]
        constraints = [models.UniqueConstraint(fields=["topic", "week_start"], name="topicalert_topic_week_unique")]

    def __str__(self) -> str:
        return f"{self.topic_id} {self.week_start}"
