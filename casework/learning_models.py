"""Data learned from the archive (issue 12): the stored dispatch model and the intake duplicate index.

Imported at the end of :mod:`casework.models`, so these are ordinary models of the casework app.
"""

from django.db import models
from django.utils.translation import gettext_lazy as _


class RouterModel(models.Model):
    """A trained dispatch-suggestion model (:mod:`casework.router`) with when, on what, how good.

    ``blob`` holds the joblib bytes, so every web and worker process loads the same model. The
    newest row with ``is_active`` is the one in use; older rows are kept for the record.
    """

    trained_at = models.DateTimeField(_("训练时间"), db_index=True)
    n_cases = models.PositiveIntegerField(_("训练留言数"))
    n_units = models.PositiveIntegerField(_("单位数"))
    size_bytes = models.PositiveIntegerField(_("模型大小(字节)"))
    seconds = models.FloatField(_("训练耗时(秒)"), default=0)
    folds = models.PositiveSmallIntegerField(_("交叉验证折数"), default=3)
    macro_f1 = models.FloatField(_("宏平均F1(交叉验证)"), null=True, blank=True)
    micro_f1 = models.FloatField(_("微平均F1(交叉验证)"), null=True, blank=True)
    top3 = models.FloatField(_("前三命中率(交叉验证)"), null=True, blank=True)
    scores = models.JSONField(_("分项指标"), default=dict, blank=True)
    blob = models.BinaryField(_("模型"), editable=False)
    is_active = models.BooleanField(_("启用"), default=True, db_index=True)

    class Meta:
        verbose_name = _("智能交办模型")
        verbose_name_plural = _("智能交办模型")
        ordering = ["-trained_at", "-id"]

    def __str__(self) -> str:
        return f"{self.trained_at:%Y-%m-%d %H:%M} · {self.n_cases}"


class DuplicateBand(models.Model):
    """One LSH band key of a case's MinHash signature; cases sharing a key are duplicate candidates."""

    # No index of its own: dupband_case_band_unique (case, band) serves lookups by case (32 rows a case).
    case = models.ForeignKey("casework.Case", on_delete=models.CASCADE, related_name="duplicate_bands",
                             db_index=False)
    band = models.PositiveSmallIntegerField()
    key = models.CharField(max_length=32)

    class Meta:
        indexes = [models.Index(fields=["key"], name="dupband_key_idx")]
        constraints = [models.UniqueConstraint(fields=["case", "band"], name="dupband_case_band_unique")]

    def __str__(self) -> str:
        return f"{self.case_id}:{self.band}"


class DuplicateFlag(models.Model):
    """重复留言提示: the new ``case`` nearly repeats the open or recent case ``repeats``."""

    class Reason(models.TextChoices):
        SAME_CITIZEN = "same_citizen", _("同一网民重复留言")
        SAME_TEXT = "same_text", _("多人相同内容")

    case = models.ForeignKey("casework.Case", on_delete=models.CASCADE, related_name="duplicate_flags",
                             verbose_name=_("留言"))
    repeats = models.ForeignKey("casework.Case", on_delete=models.CASCADE, related_name="+",
                                verbose_name=_("疑似重复的案件"))
    similarity = models.FloatField(_("相似度"))
    reason = models.CharField(_("原因"), max_length=20, choices=Reason.choices)
    created_at = models.DateTimeField(_("提示时间"), auto_now_add=True)

    class Meta:
        verbose_name = _("重复留言提示")
        verbose_name_plural = _("重复留言提示")
        ordering = ["case", "-similarity"]
        constraints = [models.UniqueConstraint(fields=["case", "repeats"], name="dupflag_case_repeats_unique")]

    def __str__(self) -> str:
        return f"{self.case_id} ≈ {self.repeats_id}"
