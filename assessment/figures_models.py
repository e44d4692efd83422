"""Kept assessment figures (issue 11 §5): the page a leader opens reads them instead of the event log."""

from django.db import models
from django.utils.translation import gettext_lazy as _


class KeptFigures(models.Model):
    """Every assessment figure per unit for one period, as computed from the audit log at ``computed_at``.

    Written only by :func:`assessment.figures_store.figures_refresh` (the Celery beat task
    ``assessment.figures_refresh`` and the report's 立即更新); ``data`` is
    ``{metric: {unit_id: figure}}`` in the form of :func:`assessment.figures_store.figures_dump`;
    ``office`` the office table (:func:`assessment.office_metrics.office_figures_dump`).
    ``last_event_id`` is the newest audit event the computation could read.
    """

    period_start = models.DateTimeField(_("考核期间起"))
    period_end = models.DateTimeField(_("考核期间止(不含)"))
    computed_at = models.DateTimeField(_("数据更新时间"))
    seconds = models.FloatField(_("计算用时(秒)"), default=0)
    last_event_id = models.BigIntegerField(_("最新审计记录"), default=0)
    data = models.JSONField(_("考核数据"), default=dict)
    # The 网评办's and the leaders' own rates (assessment.office_metrics.office_figures_dump);
    # empty in rows kept before they were: the report then computes them.
    office = models.JSONField(_("网评办与局领导数据"), default=dict, blank=True)

    class Meta:
        verbose_name = _("考核数据快照")
        verbose_name_plural = _("考核数据快照")
        constraints = [
            models.UniqueConstraint(fields=["period_start", "period_end"], name="kept_figures_once_per_period"),
        ]

    def __str__(self) -> str:
        return f"{self.period_start:%Y-%m-%d}–{self.period_end:%Y-%m-%d} @ {self.computed_at:%Y-%m-%d %H:%M}"
