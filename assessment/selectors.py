"""Reads for the performance assessment (DESIGN.md §7), the topics and the dashboard.

Every metric is one function over :class:`assessment.facts.AssessmentFacts` (the audit log read
into per-unit, per-round clocks). Each returns ``{unit_id: Ratio}`` (or ``{unit_id: int}``) for
the units that have data in the period, and can list the cases behind each number
(:func:`metric_case_ids`). The decisions on edge cases are part of each docstring and of the
README section "Performance assessment".

Scope: a reader sees the figures of the events attributed to the units in his scope
(:func:`assessment_scope_unit_ids`), never "the cases now led by units in scope": a unit's staff
see the return they made and the dispatches recorded late with an earlier effective time, and
get, for their units, exactly the figures a superuser gets. Every surface (report, drill-down,
xlsx, dashboard) computes through :func:`assessment_figures` / :func:`_aggregate` on the same
fact tables, with the same period and the same report time ``as_of``.

Period attribution, in one line per metric: 按时签收率 and 回退率 by the dispatch time; 按时办结率 by
the (extended) reply due time; 发回重办率 by the time of each feedback / send-back / reopening;
满意率 by the time of the follow-up; mean working days to reply by the publication time; counts by
the time the notice, referral or approval was made.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal

from django.db.models import Count, Q, QuerySet
from django.db.models.functions import TruncWeek
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from accounts.models import Unit
from accounts.selectors import units_in_scope, user_is_city_wide
from assessment.facts import AssessmentFacts, Period
from assessment.models import AssessmentWeights, KnowledgeArticle, Topic, TopicAlert
from assessment.topic_scope import hot_topics_for, topics_figures_for, topics_visible_to
from casework.calendar import SHANGHAI
from casework.models import (
    ACTIVE_STATES,
    Case,
    DisciplineReferral,
    Extension,
    ReferralCase,
    State,
    SupervisionNotice,
)
from casework.privacy import citizen_text_for
from casework.selectors import cases_visible_to


@dataclass(frozen=True)
class Ratio:
    """A rate as numerator and denominator; ``value`` is None when nothing was due."""

    num: int
    den: int

    @property
    def value(self) -> float | None:
        return self.num / self.den if self.den else None

    def __add__(self, other: Ratio) -> Ratio:
        return Ratio(self.num + other.num, self.den + other.den)


@dataclass(frozen=True)
class Mean:
    """A mean as total and count; ``value`` is None when there is nothing to average."""

    total: float
    count: int

    @property
    def value(self) -> float | None:
        return self.total / self.count if self.count else None

    def __add__(self, other: Mean) -> Mean:
        return Mean(self.total + other.total, self.count + other.count)


RATED = ("satisfied", "basically_satisfied", "unsatisfied")
GOOD = ("satisfied", "basically_satisfied")


# Each rate metric is "rows" SQL giving (unit_id, case_id, t, num, den) over the fact tables; the
# aggregate and the drill-down both read these rows, so the number and its cases never disagree.
# Below this many cases a figure is marked (样本不足) and the unit is ranked after the units with
# real volume: a one-case unit does not rank first with 100.
MIN_VOLUME = 5

# The written definition of each figure, shown on the report, the dashboard and in the xlsx.
METRIC_DEFINITIONS = {
    "sign_for_on_time": _("按时签收的交办数 ÷ 交办数。按交办时间计入期间;退回的交办不计(计入回退率);"
                        "尚未签收且未到签收期限的不计,超过期限未签收的计为超期。"),
    "handled_on_time": _("首次反馈在(延期后的)答复期限前提交的办理时限数 ÷ 已有结果的办理时限数。按期限所在期间计;"
                       "每次交办、每次重办各起算一个时限;已反馈的时限(即使期限未到)计入,"
                       "未反馈且期限未到的不计,期限已过仍未反馈的计为超期;退回的轮次不计。"),
    "return_rate": _("被退回的交办数 ÷ 交办数。按交办时间计入期间,记在退回的单位名下(即使案件已改派)。"),
    "send_back_rate": _("(网评办发回 + 分管局领导发回 + 重办)÷ 提交反馈次数。各按发生时间计入期间,"
                      "记在当时承办的单位名下。"),
    "satisfaction": _("(满意 + 基本满意)÷ 有评价的回访。按回访时间计入期间;未联系上不计;同一轮次以最后一次评价为准。"),
    "reply_working_days": _("从时限起算(交办或重办)到答复发布的工作日数的平均值,按该单位的工作日历计"
                          "(起算当日不计,发布当日计);按发布时间(补录的按实际发布时间)计入期间;延期不改变用时。"),
    "supervision_notices": _("期间内开具的督办单数,记在被督办单位(开具时的承办单位)名下,案件后来退回或改派也不转移。"),
    "referrals": _("期间内移交纪检督察的件数,记在移交时的承办单位名下。"),
    "extensions": _("期间内批准的延期申请数,记在申请单位名下;未批准的不计。"),
    "manual_notices": _("其中由网评办或局领导人工开具的督办单数(计入督办单总数),按开具时间计入期间,"
                      "记在被督办单位名下;按“每张人工督办单扣分”扣分,不再按一般督办单扣分。"),
    "poor_handling_referrals": _("其中因办理不力移交纪检督察的件数(人工移交或确认的质量触发,计入移交总数),"
                               "按移交时间计入期间,记在被移交单位名下;一次移交单位及多件案件计一次;"
                               "按“每次办理不力移交扣分”扣分,不再按一般移交扣分。"),
}


def assessment_scope_unit_ids(*, user) -> list[int] | None:
    """Return the units whose figures ``user`` may read, or None for every unit.

    Superusers and city-wide staff (网评办, 局领导, 纪检督察: a grant on a root unit) read every unit;
    anyone else the units of his scope (granted units and their descendants). The figures of a
    unit are those of the events attributed to it, so its staff see its returns even though the
    returned cases are no longer theirs to open.
    """
    if not user.is_authenticated or not user.is_active:
        return []
    if user.is_superuser or user_is_city_wide(user=user):
        return None
    return sorted(units_in_scope(user=user).values_list("id", flat=True))


def _rows_sign_for(f: AssessmentFacts) -> tuple[str, list]:
    return (
        "SELECT unit_id, case_id, dispatched_at AS t, "
        "CASE WHEN accepted_at IS NOT NULL AND accepted_at <= sign_due THEN 1 ELSE 0 END AS num, 1 AS den "
        "FROM {asg} WHERE returned_at IS NULL AND (accepted_at IS NOT NULL OR sign_due < %s)",
        [f.d.param_ts(f.as_of)],
    )


def _rows_handled(f: AssessmentFacts) -> tuple[str, list]:
    return (
        "SELECT unit_id, case_id, due_at AS t, "
        "CASE WHEN feedback_at IS NOT NULL AND feedback_at <= due_at THEN 1 ELSE 0 END AS num, 1 AS den "
        "FROM {clk} WHERE returned = 0 AND due_at IS NOT NULL AND (feedback_at IS NOT NULL OR due_at < %s)",
        [f.d.param_ts(f.as_of)],
    )


def _rows_return(f: AssessmentFacts) -> tuple[str, list]:
    return (
        "SELECT unit_id, case_id, dispatched_at AS t, "
        "CASE WHEN returned_at IS NOT NULL THEN 1 ELSE 0 END AS num, 1 AS den FROM {asg}",
        [],
    )


def _rows_send_back(f: AssessmentFacts) -> tuple[str, list]:
    return (
        "SELECT unit_id, case_id, at AS t, "
        "CASE WHEN action <> 'submit_feedback' THEN 1 ELSE 0 END AS num, "
        "CASE WHEN action = 'submit_feedback' THEN 1 ELSE 0 END AS den FROM {ev} "
        "WHERE action IN ('submit_feedback', 'office_send_back', 'leader_send_back', 'reopen')",
        [],
    )


def _rows_satisfaction(f: AssessmentFacts) -> tuple[str, list]:
    rated = ", ".join(f"'{r}'" for r in RATED)
    good = ", ".join(f"'{r}'" for r in GOOD)
    return (
        f"SELECT e.unit_id, e.case_id, e.at AS t, CASE WHEN e.result IN ({good}) THEN 1 ELSE 0 END AS num, "
        "1 AS den FROM {ev} e JOIN (SELECT case_id, rnd, MAX(seq) AS seq FROM {ev} "
        f"WHERE action = 'record_follow_up' AND result IN ({rated}) GROUP BY case_id, rnd) l "
        "ON l.case_id = e.case_id AND l.seq = e.seq",
        [],
    )


def _rows_reply_days(f: AssessmentFacts) -> tuple[str, list]:
    cal = f.calendar_table()
    u = f.cal_unit("k.unit_id")
    return (
        f"SELECT k.unit_id, k.case_id, k.published_at AS t, (ce.n - cs.n) AS num, 1 AS den FROM {{clk}} k "
        f"JOIN {cal} cs ON cs.u = {u} AND cs.d = {f.d.local_date('k.start_at')} "
        f"JOIN {cal} ce ON ce.u = {u} AND ce.d = {f.d.local_date('k.published_at')} "
        "WHERE k.published_at IS NOT NULL",
        [],
    )


ROWS = {
    "sign_for_on_time": _rows_sign_for,
    "handled_on_time": _rows_handled,
    "return_rate": _rows_return,
    "send_back_rate": _rows_send_back,
    "satisfaction": _rows_satisfaction,
    "reply_working_days": _rows_reply_days,
}


def _aggregate(f: AssessmentFacts, name: str, *, by_month: bool = False) -> dict:
    rows_sql, params = ROWS[name](f)
    key = f.d.local_month("r.t") if by_month else "r.unit_id"
    where = "r.t >= %s AND r.t < %s"
    params = params + [f.d.param_ts(f.period.start), f.d.param_ts(f.period.end)]
    if f.unit_ids is not None:
        # Candidate cases may have passed through other units (a return); keep the asked units.
        where += f" AND r.unit_id IN ({', '.join(['%s'] * len(f.unit_ids)) or 'NULL'})"
        params += f.unit_ids
    sql = f"SELECT {key}, SUM(r.num), SUM(r.den) FROM ({rows_sql}) r WHERE {where} GROUP BY {key}"
    out = {}
    for k, num, den in f.query(sql, params):
        if name == "reply_working_days":
            out[k] = Mean(float(num or 0), int(den or 0))
        else:
            out[k] = Ratio(int(num or 0), int(den or 0))
    return out


def _facts(facts, period, unit_ids, cases, as_of) -> tuple[AssessmentFacts, bool]:
    if facts is not None:
        return facts, False
    f = AssessmentFacts(period=period, unit_ids=unit_ids, cases=cases, as_of=as_of)
    f.build()
    return f, True


def _metric(name: str, facts, period, unit_ids, cases, as_of) -> dict:
    f, own = _facts(facts, period, unit_ids, cases, as_of)
    try:
        return _aggregate(f, name)
    finally:
        if own:
            f.drop()


def metric_sign_for_on_time(*, facts: AssessmentFacts | None = None, period: Period | None = None,
                            unit_ids: list[int] | None = None, cases: QuerySet | None = None,
                            as_of: datetime | None = None) -> dict[int, Ratio]:
    """Return 按时签收率 per unit: dispatches signed for by the sign-for deadline ÷ dispatches.

    Counted per dispatch (a case dispatched twice counts twice), in the period of the dispatch time,
    even when the signing falls in the next period. The deadline is the one recorded in the
    dispatch event, moved by the latest approved ``sign_for`` extension of that round. A dispatch
    the unit returned to the office is left out of this rate (it is counted by 回退率). A dispatch
    still unsigned whose deadline is after ``as_of`` is left out (not yet decided); one unsigned
    past its deadline counts as late.

    Args:
        facts: prepared fact tables (its period, units and scope are used); or give ``period``,
            ``unit_ids``, ``cases`` and ``as_of`` to build them (see :class:`AssessmentFacts`).
    """
    return _metric("sign_for_on_time", facts, period, unit_ids, cases, as_of)


def metric_handled_on_time(*, facts: AssessmentFacts | None = None, period: Period | None = None,
                           unit_ids: list[int] | None = None, cases: QuerySet | None = None,
                           as_of: datetime | None = None) -> dict[int, Ratio]:
    """Return 按时办结率 per unit: reply clocks whose first feedback reached review by the deadline ÷ clocks decided.

    A reply clock starts at each dispatch and at each reopening (重办 starts a new clock for the
    same unit); its deadline is the one recorded in the starting event, moved to the latest
    approved ``reply`` extension of that round (an approved extension is not late). The clock
    belongs to the period in which its (extended) deadline falls — a case dispatched in one period
    and answered in the next is judged in the period of its deadline. The first ``submit_feedback``
    of the round decides; a later send-back does not make it late (send-backs are counted by
    发回重办率). A round that ended in a return to the office has no reply due and is left out.

    Decided (issue 8 §3; the README says the same): a clock counts once its outcome is known at
    ``as_of``. An answered clock counts at once, even when its deadline is not yet due (it can
    no longer be late); a clock with no feedback whose deadline is after ``as_of`` is left out;
    past it, it is late. 按时签收率 follows the same rule for the sign-for deadline.

    Args: as :func:`metric_sign_for_on_time`.
    """
    return _metric("handled_on_time", facts, period, unit_ids, cases, as_of)


def metric_return_rate(*, facts: AssessmentFacts | None = None, period: Period | None = None,
                       unit_ids: list[int] | None = None, cases: QuerySet | None = None,
                       as_of: datetime | None = None) -> dict[int, Ratio]:
    """Return 回退率 per unit: dispatches the unit returned to the office ÷ dispatches to the unit.

    Per dispatch, in the period of the dispatch time (a return made in the next period counts with
    its dispatch). The return is charged to the unit it was dispatched to, which is no longer the
    case's lead unit afterwards.

    Args: as :func:`metric_sign_for_on_time`.
    """
    return _metric("return_rate", facts, period, unit_ids, cases, as_of)


def metric_send_back_rate(*, facts: AssessmentFacts | None = None, period: Period | None = None,
                          unit_ids: list[int] | None = None, cases: QuerySet | None = None,
                          as_of: datetime | None = None) -> dict[int, Ratio]:
    """Return 发回重办率 per unit: (review send-backs + reopenings) ÷ feedbacks submitted.

    Send-backs by the 网评办 (tier 2) and by the leader (tier 3) and reopenings after follow-up all
    count; each event counts in the period it happened in, as does each feedback. Both are charged
    to the unit of the dispatch the case was under at the time.

    Args: as :func:`metric_sign_for_on_time`.
    """
    return _metric("send_back_rate", facts, period, unit_ids, cases, as_of)


def metric_satisfaction(*, facts: AssessmentFacts | None = None, period: Period | None = None,
                        unit_ids: list[int] | None = None, cases: QuerySet | None = None,
                        as_of: datetime | None = None) -> dict[int, Ratio]:
    """Return 满意率 per unit: (满意 + 基本满意) ÷ follow-ups with a rating.

    Read from the ``record_follow_up`` events (result in the payload, as recorded by
    ``case_record_follow_up``). 未联系上 (unreachable citizen) is not a rating and is left out of
    both numerator and denominator. When a round has several rated follow-ups, the last one counts
    (a correction replaces the earlier rating); a reopened case is rated again in its new round.
    Counted in the period of the follow-up.

    Args: as :func:`metric_sign_for_on_time`.
    """
    return _metric("satisfaction", facts, period, unit_ids, cases, as_of)


def metric_reply_working_days(*, facts: AssessmentFacts | None = None, period: Period | None = None,
                              unit_ids: list[int] | None = None, cases: QuerySet | None = None,
                              as_of: datetime | None = None) -> dict[int, Mean]:
    """Return the mean working days to reply per unit (``Mean.value``; None without publications).

    For each publication in the period: working days from the start of its clock (the dispatch,
    or the reopening for a later round) to the publication, counted as
    :func:`casework.calendar.working_days_between` does (working days after the start date up to
    and including the publication date, on the unit's calendar: the bureau's with the unit's own
    exceptions). The publication time is the effective one recorded in the publish event
    (``published_at`` of its payload, for a publication recorded later), else the event's time.
    Extensions do not change it. A reply published on the day its clock started counts 0.

    Args: as :func:`metric_sign_for_on_time`.
    """
    return _metric("reply_working_days", facts, period, unit_ids, cases, as_of)


def _count_by_unit(qs: QuerySet, time_field: str, period: Period, unit_ids, cases) -> dict[int, int]:
    # Attributed to the row's own unit (the unit the notice was addressed to, the unit referred,
    # the requesting unit), never to the case's current lead unit.
    qs = qs.filter(**{f"{time_field}__gte": period.start, f"{time_field}__lt": period.end})
    if unit_ids is not None:
        qs = qs.filter(unit_id__in=unit_ids)
    if cases is not None:
        qs = qs.filter(case__in=cases.values("id"))
    return dict(qs.values_list("unit_id").annotate(n=Count("id")).values_list("unit_id", "n"))


def metric_supervision_notices(*, period: Period, unit_ids: list[int] | None = None,
                               cases: QuerySet | None = None) -> dict[int, int]:
    """Return the number of 督办单 per supervised unit opened in ``period`` (by the ladder or by hand).

    A notice belongs to the unit it was addressed to, for good: it stays in that unit's count when
    the case is later returned (the notice is then closed) and re-dispatched to another unit
    (see :func:`casework.selectors.notices_awaiting_answer_q` for which notices await an answer).
    """
    return _count_by_unit(SupervisionNotice.objects.all(), "opened_at", period, unit_ids, cases)


def metric_referrals(*, period: Period, unit_ids: list[int] | None = None,
                     cases: QuerySet | None = None) -> dict[int, int]:
    """Return the number of referrals to 纪检督察 per unit made in ``period``."""
    return _count_by_unit(DisciplineReferral.objects.all(), "created_at", period, unit_ids, cases)


def metric_manual_notices(*, period: Period, unit_ids: list[int] | None = None,
                          cases: QuerySet | None = None) -> dict[int, int]:
    """Return the number of 督办单 opened by hand per supervised unit in ``period`` (issue 13).

    Part of :func:`metric_supervision_notices` (origin ``manual``), deducted with its own weight.
    """
    return _count_by_unit(SupervisionNotice.objects.filter(origin="manual"), "opened_at", period, unit_ids, cases)


def metric_poor_handling_referrals(*, period: Period, unit_ids: list[int] | None = None,
                                   cases: QuerySet | None = None) -> dict[int, int]:
    """Return the number of 办理不力 referrals per referred unit in ``period`` (issue 13).

    Part of :func:`metric_referrals` (kind ``poor_handling``: by hand or a confirmed quality
    rung); a unit referred with several cases counts once. Deducted with its own weight.
    """
    return _count_by_unit(DisciplineReferral.objects.filter(kind="poor_handling"), "created_at", period,
                          unit_ids, cases)


def metric_extensions(*, period: Period, unit_ids: list[int] | None = None,
                      cases: QuerySet | None = None) -> dict[int, int]:
    """Return the number of approved extensions per requesting unit, by approval time in ``period``.

    Refused and pending requests are not counted (DESIGN.md §3: "an approved extension … is
    counted in the unit's assessment").
    """
    qs = Extension.objects.filter(decision=Extension.Decision.APPROVED)
    return _count_by_unit(qs, "decided_at", period, unit_ids, cases)


RATE_METRICS = ("sign_for_on_time", "handled_on_time", "return_rate", "send_back_rate", "satisfaction")
COUNT_METRICS = {
    "supervision_notices": metric_supervision_notices,
    "referrals": metric_referrals,
    "extensions": metric_extensions,
    "manual_notices": metric_manual_notices,
    "poor_handling_referrals": metric_poor_handling_referrals,
}
METRIC_LABELS = {
    "sign_for_on_time": _("按时签收率"),
    "handled_on_time": _("按时办结率"),
    "return_rate": _("回退率"),
    "send_back_rate": _("发回重办率"),
    "satisfaction": _("满意率"),
    "reply_working_days": _("平均答复用时(工作日)"),
    "supervision_notices": _("督办单"),
    "referrals": _("移交纪检督察"),
    "extensions": _("批准延期"),
    "manual_notices": _("其中人工督办单"),
    "poor_handling_referrals": _("其中办理不力移交"),
}
LOWER_IS_BETTER = {"return_rate", "send_back_rate"}


def metric_case_ids(*, facts: AssessmentFacts, metric: str, part: str, unit_ids: list[int] | None) -> list[int]:
    """Return the ids of the cases behind one number, newest first.

    Args:
        metric: a key of ``METRIC_LABELS``.
        part: ``"num"`` (the cases counted in the numerator, e.g. signed on time) or ``"den"``
            (all cases counted); for counts either gives the counted cases.
        unit_ids: the units whose number it is, or None for all units in ``facts``; always narrowed
            to ``facts.unit_ids`` (the reader's scope).
    """
    if facts.unit_ids is not None:
        unit_ids = [u for u in (unit_ids if unit_ids is not None else facts.unit_ids) if u in set(facts.unit_ids)]
    if metric in COUNT_METRICS:
        model, time_field = {
            "supervision_notices": (SupervisionNotice.objects.all(), "opened_at"),
            "referrals": (DisciplineReferral.objects.all(), "created_at"),
            "extensions": (Extension.objects.filter(decision="approved"), "decided_at"),
            "manual_notices": (SupervisionNotice.objects.filter(origin="manual"), "opened_at"),
            "poor_handling_referrals": (DisciplineReferral.objects.filter(kind="poor_handling"), "created_at"),
        }[metric]
        qs = model.filter(**{f"{time_field}__gte": facts.period.start, f"{time_field}__lt": facts.period.end})
        if unit_ids is not None:
            qs = qs.filter(unit_id__in=unit_ids)
        if facts.cases is not None:
            qs = qs.filter(case__in=facts.cases.values("id"))
        ids = set(qs.values_list("case_id", flat=True))
        if metric in ("referrals", "poor_handling_referrals"):
            # issue 13: a unit referred with several cases drills down to every case concerned
            ids |= set(ReferralCase.objects.filter(referral__in=qs.values("pk")).values_list("case_id", flat=True))
            if facts.cases is not None:
                ids &= set(facts.cases.filter(pk__in=ids).values_list("pk", flat=True))
        return sorted(ids, reverse=True)
    if metric not in ROWS:
        raise KeyError(metric)
    rows_sql, params = ROWS[metric](facts)
    where = ["r.t >= %s", "r.t < %s"]
    params = params + [facts.d.param_ts(facts.period.start), facts.d.param_ts(facts.period.end)]
    if part == "num" and metric != "reply_working_days":
        where.append("r.num > 0")
    else:
        where.append("r.den > 0")
    if unit_ids is not None:
        if not unit_ids:
            return []
        where.append(f"r.unit_id IN ({', '.join(['%s'] * len(unit_ids))})")
        params += list(unit_ids)
    sql = f"SELECT DISTINCT r.case_id FROM ({rows_sql}) r WHERE {' AND '.join(where)} ORDER BY r.case_id DESC"
    return [row[0] for row in facts.query(sql, params)]


# ---------------------------------------------------------------------------- units and reports


def unit_descendant_ids(*, unit: Unit) -> list[int]:
    """Return the ids of ``unit`` and every unit below it in the tree (materialised path)."""
    return list(Unit.objects.filter(path__startswith=unit.path).values_list("id", flat=True))


def unit_groups(*, kind: str | None = None) -> dict[int, tuple[Unit, set[int]]]:
    """Return assessed groups: ``{unit_id: (unit, ids of it and its descendants)}``.

    ``kind`` None gives every unit on its own (no descendants); a kind (``district``,
    ``police_type`` …) gives each unit of that kind with the units below it, which is how the
    report rolls figures up per district and per police type.
    """
    units = list(Unit.objects.all().order_by("path"))
    if kind is None:
        return {u.pk: (u, {u.pk}) for u in units}
    groups = {}
    for u in units:
        if u.kind == kind:
            groups[u.pk] = (u, {v.pk for v in units if v.path.startswith(u.path)})
    return groups


def rollup(values: dict[int, object], groups: dict[int, tuple[Unit, set[int]]]) -> dict[int, object]:
    """Sum per-unit ``Ratio``/``Mean``/int values into ``groups`` (see :func:`unit_groups`)."""
    out = {}
    for gid, (_unit, members) in groups.items():
        total = None
        for uid in members:
            if uid in values:
                total = values[uid] if total is None else total + values[uid]
        if total is not None:
            out[gid] = total
    return out


@dataclass
class UnitFigures:
    """All assessment figures of one unit (or group) for one period, and its score and rank."""

    unit: Unit
    values: dict[str, object] = field(default_factory=dict)
    score: float | None = None
    rank: int | None = None

    @property
    def volume(self) -> int:
        """The unit's dispatches in the period (the denominator of 回退率): its case volume."""
        r = self.values.get("return_rate")
        return r.den if isinstance(r, Ratio) else 0

    @property
    def small(self) -> bool:
        """Fewer than :data:`MIN_VOLUME` dispatches: figures marked, ranked after real volume."""
        return self.volume < MIN_VOLUME


def assessment_figures(*, period: Period, cases: QuerySet | None = None, unit_ids: list[int] | None = None,
                       as_of: datetime | None = None) -> dict[str, dict]:
    """Return every metric per unit for ``period``: ``{metric: {unit_id: Ratio | Mean | int}}``.

    One fact build, then one aggregate query per metric. ``unit_ids`` should be
    :func:`assessment_scope_unit_ids` of the reader (None for all units); ``cases`` narrows further
    and is not a reader's scope (see :class:`assessment.facts.AssessmentFacts`).
    """
    with AssessmentFacts(period=period, unit_ids=unit_ids, cases=cases, as_of=as_of) as f:
        out = {name: _aggregate(f, name) for name in ROWS}
    for name, fn in COUNT_METRICS.items():
        out[name] = fn(period=period, unit_ids=unit_ids, cases=cases)
    return out


def assessment_weights_current() -> AssessmentWeights:
    """Return the weights in force (the newest row), or unsaved defaults when none was saved."""
    return AssessmentWeights.objects.order_by("-updated_at", "-id").first() or AssessmentWeights()


def assessment_score(*, values: dict[str, object], weights: AssessmentWeights) -> float | None:
    """Return the annual score (0–100) of one unit from its figures.

    Formula: the weighted mean, over the rates that have a denominator, of
    按时签收率, 按时办结率, 1 − 回退率, 1 − 发回重办率 and 满意率, times 100; minus the per-item
    deductions for 督办单, referrals to 纪检督察 and approved extensions (a 督办单 opened by hand and a
    办理不力 referral deduct their own ``per_manual_notice`` / ``per_poor_handling_referral``
    instead of the general deduction, issue 13); never below 0. A rate
    with nothing due (denominator 0) is left out and its weight shared by the others. None when no
    rate has data.
    """
    total_w = Decimal(0)
    acc = Decimal(0)
    for name in RATE_METRICS:
        r = values.get(name)
        w = Decimal(str(getattr(weights, name)))
        if r is None or r.value is None or w == 0:
            continue
        v = Decimal(str(r.value))
        if name in LOWER_IS_BETTER:
            v = 1 - v
        acc += w * v
        total_w += w
    if total_w == 0:
        return None
    score = acc / total_w * 100
    manual = Decimal(values.get("manual_notices", 0) or 0)
    poor = Decimal(values.get("poor_handling_referrals", 0) or 0)
    # issue 13: manual 督办单 and 办理不力 referrals deduct their own points, the rest the general ones
    for n, per in ((Decimal(values.get("supervision_notices", 0) or 0) - manual, "per_supervision_notice"),
                   (manual, "per_manual_notice"),
                   (Decimal(values.get("referrals", 0) or 0) - poor, "per_referral"),
                   (poor, "per_poor_handling_referral"),
                   (Decimal(values.get("extensions", 0) or 0), "per_extension")):
        score -= max(n, Decimal(0)) * Decimal(str(getattr(weights, per)))
    return round(float(max(score, Decimal(0))), 2)


def assessment_annual(*, period: Period, cases: QuerySet | None = None, kind: str | None = None,
                      weights: AssessmentWeights | None = None, as_of: datetime | None = None,
                      unit_ids: list[int] | None = None, figures: dict | None = None) -> list[UnitFigures]:
    """Return the ranked annual assessment: one :class:`UnitFigures` per unit (or group) with data.

    Args:
        period: usually ``Period.year(y)``.
        cases: narrows the cases read (None for all); not a reader's scope.
        unit_ids: the reader's units (:func:`assessment_scope_unit_ids`); None for every unit.
        kind: None to rank single units, or a unit kind to rank its units with their descendants
            (per district, per police type).
        weights: default :func:`assessment_weights_current`.
        figures: the figures already computed for ``period`` and ``unit_ids`` (the kept figures of
            :func:`assessment.figures_store.figures_kept`); default computed now.

    Ranking is by score, highest first; equal scores share a rank (1, 2, 2, 4); units with fewer
    than :data:`MIN_VOLUME` dispatches in the period (``UnitFigures.small``) are ranked after every
    unit with real volume, whatever their score; units without a score come last, unranked.
    """
    weights = weights or assessment_weights_current()
    if figures is None:
        figures = assessment_figures(period=period, cases=cases, as_of=as_of, unit_ids=unit_ids)
    groups = unit_groups(kind=kind)
    rolled = {name: rollup(vals, groups) for name, vals in figures.items()}
    rows = []
    for gid, (unit, _members) in groups.items():
        values = {name: rolled[name][gid] for name in rolled if gid in rolled[name]}
        if not values:
            continue
        rows.append(UnitFigures(unit=unit, values=values, score=assessment_score(values=values, weights=weights)))
    rows.sort(key=lambda r: (r.score is None, r.small, -(r.score or 0), r.unit.path))
    last_key, last_rank = None, 0
    for i, row in enumerate(rows, start=1):
        if row.score is None:
            continue
        if (row.small, row.score) != last_key:
            last_rank, last_key = i, (row.small, row.score)
        row.rank = last_rank
    return rows


# ---------------------------------------------------------------------------- dashboard


def _week_start(d):
    return d - timedelta(days=d.weekday())


def month_periods(*, first: date, last: date) -> list[tuple[str, Period]]:
    """Return ``[("YYYY-MM", Period of that whole Beijing month)]`` from ``first``'s month to ``last``'s."""
    out = []
    m = first.replace(day=1)
    while m <= last:
        nxt = (m + timedelta(days=32)).replace(day=1)
        out.append((m.strftime("%Y-%m"), Period.days(m, nxt - timedelta(days=1))))
        m = nxt
    return out


def dashboard_window(*, now: datetime, weeks: int = 12, end: date | None = None) -> tuple[date, date]:
    """Return the dashboard's weekly window ``(first Monday, last Sunday)`` of ``weeks`` weeks.

    The window ends with the week (Monday–Sunday, Beijing) that contains ``end``, the date the
    reader chose; without one, the current week at ``now``. It never moves to wherever the newest
    message happens to fall.
    """
    weeks = max(1, min(int(weeks), 104))
    last_day = end or timezone.localtime(now, SHANGHAI).date()
    end_day = _week_start(last_day) + timedelta(days=7)
    return end_day - timedelta(days=7 * weeks), end_day - timedelta(days=1)


DASHBOARD_RATES = ("sign_for_on_time", "handled_on_time", "satisfaction", "return_rate", "send_back_rate",
                   "reply_working_days")


def dashboard_data(*, user, now: datetime | None = None, weeks: int = 12, end: date | None = None) -> dict:
    """Return the dashboard's figures for ``user``.

    Keys: ``window`` (the weekly window: ``start``, ``end``, ``weeks`` and the ``previous`` /
    ``next`` window ends, see :func:`dashboard_window`), ``volume_by_week`` (messages submitted per
    week in the window), ``volume_by_unit`` (same window, per lead unit), ``open_by_state`` and
    ``overdue`` (now, per clock) — these four within ``cases_visible_to(user)`` —, ``rates_by_month``
    (each of the last 12 whole months: every rate of :data:`DASHBOARD_RATES` for the reader's units,
    computed exactly as the report for that month with the same ``as_of``: the same fact tables,
    rules and scope, :func:`assessment_scope_unit_ids`), ``definitions`` (each figure's written
    definition), ``min_volume``, ``hot_topics`` (top 10 topics by heat with the number of
    visible messages, ``alert`` when in a rise) and ``topic_alerts`` (the topics in a 未诉先办 rise,
    :mod:`assessment.alerts`).

    Args:
        now: the report time (``as_of``), default the current time.
        weeks: length of the weekly window (1–104).
        end: a date inside the last week of the window, chosen by the reader.
    """
    now = now or timezone.now()
    visible = cases_visible_to(user=user)
    start_day, last_day = dashboard_window(now=now, weeks=weeks, end=end)
    weeks = (last_day - start_day).days // 7 + 1
    end_day = last_day + timedelta(days=1)
    window = Period.days(start_day, last_day)
    in_window = visible.filter(submitted_at__gte=window.start, submitted_at__lt=window.end)
    # One pass over the window's cases for both the weekly and the per-unit volume (issue 11 §7).
    by_week: dict = {}
    by_unit: dict = {}
    for row in (in_window.annotate(w=TruncWeek("submitted_at", tzinfo=SHANGHAI))
                .values("w", "lead_unit").annotate(n=Count("id")).order_by()):
        week = timezone.localtime(row["w"], SHANGHAI).date() if hasattr(row["w"], "tzinfo") else row["w"]
        by_week[week] = by_week.get(week, 0) + row["n"]
        by_unit[row["lead_unit"]] = by_unit.get(row["lead_unit"], 0) + row["n"]
    volume_by_week = []
    day = start_day
    while day < end_day:
        volume_by_week.append({"week": day.isoformat(), "count": by_week.get(day, 0)})
        day += timedelta(days=7)
    unit_names = dict(Unit.objects.filter(pk__in=[u for u in by_unit if u is not None]).values_list("pk", "name"))
    volume_by_unit = [
        {"unit_id": unit_id, "unit": unit_names.get(unit_id) or "未交办", "count": n}
        for unit_id, n in sorted(by_unit.items(), key=lambda item: -item[1])
    ]
    # Open cases by state and the overdue counts in one pass over the open cases (the partial
    # index case_open_state_idx holds every column it reads).
    open_by_state = {}
    overdue = {"sign_for": 0, "reply": 0}
    for r in (visible.filter(state__in=ACTIVE_STATES).values("state")
              .annotate(n=Count("id"),
                        sign_for=Count("id", filter=Q(state=State.DISPATCHED, sign_for_due_at__lt=now)),
                        reply=Count("id", filter=Q(reply_due_at__lt=now)))
              .order_by()):
        open_by_state[r["state"]] = r["n"]
        overdue["sign_for"] += r["sign_for"]
        overdue["reply"] += r["reply"]
    local_now = timezone.localtime(now, SHANGHAI)
    first_month = (local_now.date().replace(day=1) - timedelta(days=330)).replace(day=1)
    months = month_periods(first=first_month, last=local_now.date())
    # Whole months, the current one included up to its end (not "now"): a month's figure is the
    # report's figure for that month (?start=…-01&end=…-last), read at the same as_of.
    months_period = Period(months[0][1].start, months[-1][1].end)
    rates: dict[str, dict] = {}
    with AssessmentFacts(period=months_period, unit_ids=assessment_scope_unit_ids(user=user), as_of=now) as f:
        for name in DASHBOARD_RATES:
            rates[name] = _aggregate(f, name, by_month=True)

    def cell(value):
        if value is None:
            return None
        if isinstance(value, Mean):
            return {"num": value.total, "den": value.count, "value": value.value,
                    "small": value.count < MIN_VOLUME}
        return {"num": value.num, "den": value.den, "value": value.value, "small": value.den < MIN_VOLUME}

    rates_by_month = [
        {
            "month": month,
            "start": period.start.date().isoformat(),
            "end": (period.end - timedelta(days=1)).date().isoformat(),
            **{name: cell(rates[name].get(month)) for name in rates},
        }
        for month, period in months
    ]
    # Topics only through the reader's cases, figures on those cases, numbers in titles masked
    # for readers without the contact permission (assessment.topic_scope, issue 9 §1).
    hot = hot_topics_for(user=user, limit=10)
    common = set(Topic.objects.filter(pk__in=[f.topic_id for f in hot], is_common_issue=True)
                 .values_list("pk", flat=True))
    # Topics in a 未诉先办 rise, as this reader may see them (scope and titles as for the hot topics).
    open_alerts = list(TopicAlert.objects.filter(ended_week__isnull=True)
                       .filter(topic__in=topics_visible_to(user=user)).select_related("topic"))
    alert_figures = topics_figures_for(user=user, topics=[a.topic for a in open_alerts])
    alerting = {a.topic_id: a for a in open_alerts if a.topic_id in alert_figures}
    hot_topics = [
        {"id": f.topic_id, "title": citizen_text_for(user=user, text=f.title), "heat": round(f.heat, 1),
         "count": f.message_count, "common": f.topic_id in common,
         "alert": f.topic_id in alerting}
        for f in hot
    ]
    topic_alerts = [{"id": a.topic_id, "title": citizen_text_for(user=user, text=alert_figures[a.topic_id].title),
                     "week": a.week_start.isoformat(),
                     "count": a.count, "baseline": a.baseline} for a in alerting.values()]
    return {
        "window": {"start": start_day.isoformat(), "end": last_day.isoformat(), "weeks": weeks,
                   "previous": (start_day - timedelta(days=1)).isoformat(),
                   "next": (last_day + timedelta(days=7)).isoformat(),
                   "as_of": timezone.localtime(now, SHANGHAI).isoformat()},
        "volume_by_week": volume_by_week,
        "volume_by_unit": volume_by_unit,
        "open_by_state": [{"state": s, "label": str(State(s).label), "count": open_by_state.get(s, 0)}
                          for s in ACTIVE_STATES],
        "overdue": overdue,
        "rates_by_month": rates_by_month,
        "definitions": {name: {"label": METRIC_LABELS[name], "text": METRIC_DEFINITIONS[name]}
                        for name in METRIC_DEFINITIONS},
        "min_volume": MIN_VOLUME,
        "hot_topics": hot_topics,
        "topic_alerts": topic_alerts,  # 未诉先办: topics whose weekly volume is in a rise (assessment.alerts)
    }


def topic_weekly_volume(*, topic: Topic, cases: QuerySet | None = None) -> list[dict]:
    """Return the topic's messages per week (Monday, Beijing) from its first to its last week.

    Each row: ``week`` (ISO date), ``count`` and ``after_action`` (True from the week in which the
    topic's first improvement action took effect), so a chart shows the volume before and after.
    """
    qs = Case.objects.filter(topic_membership__topic=topic)
    if cases is not None:
        qs = qs.filter(pk__in=cases.values("id"))
    counts: dict = defaultdict(int)
    for at in qs.values_list("submitted_at", flat=True):
        counts[_week_start(timezone.localtime(at, SHANGHAI).date())] += 1
    if not counts:
        return []
    first_action = topic.actions.order_by("started_on").values_list("started_on", flat=True).first()
    action_week = _week_start(first_action) if first_action else None
    weeks, day = [], min(counts)
    last = max(max(counts), action_week or min(counts))
    while day <= last:
        weeks.append({"week": day.isoformat(), "count": counts.get(day, 0),
                      "after_action": bool(action_week and day >= action_week)})
        day += timedelta(days=7)
    return weeks


def knowledge_articles_for_case(*, case: Case) -> list:
    """Return the standard answers suggested for ``case``: its topic's answer first, then keyword matches.

    The caller checks that the user may see ``case`` (``casework.selectors.user_can_see_case``).
    A keyword matches when it appears in the case's subject; inactive articles are never returned.
    """
    out = []
    topic = Topic.objects.filter(memberships__case=case).select_related("article").first()
    if topic and topic.article and topic.article.is_active:
        out.append(topic.article)
    text = f"{case.subject}"
    for article in KnowledgeArticle.objects.filter(is_active=True).exclude(keywords=""):
        words = [w for w in article.keywords.replace(",", " ").replace(",", " ").split() if w]
        if article not in out and any(w in text for w in words):
            out.append(article)
    return out


def knowledge_articles_search(*, q: str, limit: int = 20) -> list:
    """Return the active standard answers whose title, keywords or text contain ``q`` (case-insensitive).

    Args:
        q: what the handler typed (stripped; an empty string returns nothing).
        limit: the most articles returned, ordered by title.
    """
    q = (q or "").strip()
    if not q:
        return []
    return list(KnowledgeArticle.objects.filter(is_active=True).filter(
        Q(title__icontains=q) | Q(keywords__icontains=q) | Q(body__icontains=q)).order_by("title")[:limit])
