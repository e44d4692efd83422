"""The 网评办's and the leaders' own speed (快速批办, issue 13 §5): their on-time rates, beside the units'.

Three rates, each one tested function over the same rows (:func:`office_rows`), so the report, its
drill-down, the xlsx and the dashboard never disagree:

``dispatch_on_time`` — 按时交办率 (网评办)
    交办 clocks decided by their deadline ÷ 交办 clocks decided or past their deadline. A 交办 clock
    (``CaseClock`` ``dispatch``, :mod:`casework.clocks`) starts at each registration and each return
    to the office, and is decided when the office 交办 (dispatches), 不予受理 or merges the message.
    In the period of its start (the registration); a clock undecided whose deadline is after
    ``as_of`` is left out, one past it counts as late.

``office_review_on_time`` — 网评办审核按时率 (网评办, tier 2)
    reviews decided (通过 or 发回) by their deadline ÷ reviews decided or past their deadline. A
    review starts at each ``submit_feedback`` (and ``revise_after_sign_off``) event and is decided
    by the next ``office_approve`` / ``office_send_back`` event of the case (times from the audit
    log, ``CaseEvent``). Its deadline is the start plus the length of the 网评办审核 clock of that
    round (``CaseClock.amount``; the policy in force when the clock started), on the bureau calendar.

``leader_review_on_time`` — 局领导审签按时率 (分管局领导, tier 3)
    the same for ``office_approve`` → ``leader_approve`` / ``leader_send_back``, with the
    分管局领导审签 clock's length. The row ``leaders`` holds every tier-3 review; each leader's own
    row holds the reviews he decided, and the undecided late ones of the units he is in charge of
    (:func:`accounts.selectors.unit_leaders_in_charge` of the lead unit; every leader when none is set).

A figure whose denominator is below :data:`assessment.selectors.MIN_VOLUME` is marked 样本不足.
These figures cover every case, so only readers of every unit (``assessment_scope_unit_ids`` None:
superusers and city-wide staff) get them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from accounts import roles
from accounts.models import User
from accounts.selectors import unit_leaders_in_charge
from assessment.facts import Period
from assessment.selectors import MIN_VOLUME, Ratio
from casework import calendar
from casework.clocks import deadline_policies
from casework.models import Case, CaseClock, CaseEvent, Clock

OFFICE_METRICS = ("dispatch_on_time", "office_review_on_time", "leader_review_on_time")
OFFICE_METRIC_LABELS = {
    "dispatch_on_time": _("按时交办率"),
    "office_review_on_time": _("网评办审核按时率"),
    "leader_review_on_time": _("局领导审签按时率"),
}
OFFICE_METRIC_DEFINITIONS = {
    "dispatch_on_time": _("按时交办、不予受理或并入主案件的交办时限数 ÷ 已有结果的交办时限数。留言登记(及单位退回)时起算,"
                        "默认 1 个工作日(办理时限「交办」);按起算时间计入期间;未交办且未到期的不计,超期未交办的计为超期。"),
    "office_review_on_time": _("网评办在审核时限内作出审核(通过或发回)的次数 ÷ 已有结果的审核次数。每次提交反馈起算一次,"
                             "时长取该轮「网评办审核」时限;按起算时间计入期间;未审核且未到期的不计。"),
    "leader_review_on_time": _("分管局领导在审签时限内作出审签(签发或发回)的次数 ÷ 已有结果的审签次数。网评办审核通过时起算,"
                             "时长取该轮「分管局领导审签」时限;记在作出审签的领导名下,超期未审签的记在承办单位的分管局领导名下。"),
}
# Which figures each row of the office table has.
ROW_METRICS = {"office": ("dispatch_on_time", "office_review_on_time"), "leaders": ("leader_review_on_time",)}

_TIERS = {
    # tier metric: (clock, start actions, decision actions)
    "office_review_on_time": (Clock.OFFICE_REVIEW, ("submit_feedback", "revise_after_sign_off"),
                              ("office_approve", "office_send_back")),
    "leader_review_on_time": (Clock.LEADER_REVIEW, ("office_approve",), ("leader_approve", "leader_send_back")),
}


@dataclass(frozen=True)
class OfficeRow:
    """One decided-or-due duty of the office or a leader: the case, when it started, num and den."""

    metric: str
    case_id: int
    start: datetime
    due: datetime
    decided_at: datetime | None
    num: int
    who: tuple[str, ...]  # the table rows it counts in: "office", "leaders", "leader:<id>"


@dataclass
class OfficeFigures:
    """One row of the office table: ``key`` (office / leaders / leader:<id>), its label and its rates."""

    key: str
    label: str
    values: dict[str, Ratio] = field(default_factory=dict)

    def small(self, metric: str) -> bool:
        """The figure's denominator is below ``MIN_VOLUME`` (样本不足)."""
        r = self.values.get(metric)
        return r is not None and r.den < MIN_VOLUME


def _decided(start: datetime, due: datetime, decided_at: datetime | None, as_of: datetime) -> int | None:
    """1 on time, 0 late, None not decided yet (undecided and not yet due at ``as_of``)."""
    if decided_at is not None and decided_at <= as_of:
        return 1 if decided_at <= due else 0
    return 0 if due < as_of else None


def _dispatch_rows(period: Period, as_of: datetime) -> list[OfficeRow]:
    out = []
    for case_id, started, due, stopped in (
        CaseClock.objects.filter(clock=Clock.DISPATCH, started_at__gte=period.start, started_at__lt=period.end,
                                 started_at__lte=as_of)
        .order_by("case_id", "round").values_list("case_id", "started_at", "due_at", "stopped_at")
    ):
        num = _decided(started, due, stopped, as_of)
        if num is not None:
            out.append(OfficeRow("dispatch_on_time", case_id, started, due, stopped, num, ("office",)))
    return out


def _review_rows(metric: str, period: Period, as_of: datetime, cal=None) -> list[OfficeRow]:
    clock, starts, decisions = _TIERS[metric]
    started_cases = CaseEvent.objects.filter(action__in=starts, at__gte=period.start, at__lt=period.end,
                                             at__lte=as_of).values("case_id")
    events = list(
        CaseEvent.objects.filter(case_id__in=started_cases, action__in=starts + decisions, at__lte=as_of)
        .order_by("case_id", "seq").values_list("case_id", "action", "at", "actor_id")
    )
    case_ids = sorted({e[0] for e in events})
    lengths: dict[int, list[tuple[datetime, int, str]]] = {}
    for case_id, started, amount, unit in (
        CaseClock.objects.filter(case_id__in=case_ids, clock=clock).order_by("case_id", "started_at")
        .values_list("case_id", "started_at", "amount", "time_unit")
    ):
        lengths.setdefault(case_id, []).append((started, amount, unit))
    cases = {c.pk: c for c in Case.objects.filter(pk__in=case_ids).select_related("lead_unit")}
    cal = cal or calendar.work_calendar()
    leaders_of_unit: dict = {}
    policies: dict[tuple[str, int | None], dict[str, tuple[int, str]]] = {}
    all_leaders = None
    out = []

    def length(case_id: int, at: datetime) -> tuple[int, str]:
        best = None
        for started, amount, unit in lengths.get(case_id, []):
            if started <= at + timedelta(seconds=5):  # the clock starts with the event that starts it
                best = (amount, unit)
        if best is None:  # no clock kept (cases from before the clocks): the policy of its kind
            case = cases[case_id]
            key = (case.message_type, case.platform_id)
            if key not in policies:  # one query per kind of message and platform, not per case
                policies[key] = deadline_policies(message_type=case.message_type, platform_id=case.platform_id)
            best = policies[key][clock]
        return best

    def finish(case_id, start, decided_at, actor_id):
        if not (period.start <= start < period.end):
            return
        amount, unit = length(case_id, start)
        due = cal.deadline(start=start, amount=amount, unit=unit).due_at
        num = _decided(start, due, decided_at, as_of)
        if num is None:
            return
        who: tuple[str, ...] = ("office",)
        if metric == "leader_review_on_time":
            nonlocal all_leaders
            if decided_at is not None and actor_id:
                who = ("leaders", f"leader:{actor_id}")
            else:
                unit = cases[case_id].lead_unit
                key = unit.pk if unit else None
                if key not in leaders_of_unit:
                    leaders_of_unit[key] = [u.pk for u in unit_leaders_in_charge(unit=unit)]
                ids = leaders_of_unit[key]
                if not ids:
                    if all_leaders is None:
                        all_leaders = list(User.objects.filter(groups__name=roles.LEADER, is_active=True)
                                           .values_list("pk", flat=True))
                    ids = all_leaders
                who = ("leaders", *(f"leader:{i}" for i in ids))
        out.append(OfficeRow(metric, case_id, start, due, decided_at, num, who))

    open_start: dict[int, datetime] = {}
    for case_id, action, at, actor_id in events:
        if action in starts:
            if case_id in open_start:  # restarted before a decision (revise after sign-off): one review
                continue
            open_start[case_id] = at
        elif case_id in open_start:
            finish(case_id, open_start.pop(case_id), at, actor_id)
    for case_id, start in open_start.items():
        finish(case_id, start, None, None)
    return out


def office_rows(*, period: Period, as_of: datetime | None = None, metric: str | None = None) -> list[OfficeRow]:
    """Return the rows behind the office and leaders' rates for ``period`` read at ``as_of``.

    Args:
        period: the half-open period (Beijing time) the duties started in.
        as_of: aware report time (default now): a decision after it is not known yet.
        metric: one of :data:`OFFICE_METRICS`, or None for all three.

    Each row is one duty decided at ``as_of`` (``num`` 1 on time, 0 late) or undecided past its
    deadline (``num`` 0); duties undecided and not yet due are not rows. Queries: one for the
    交办 clocks, three per review tier (events, clock lengths, cases), the work calendar (two, once) and the
    leaders in charge.
    """
    as_of = as_of or timezone.now()
    out: list[OfficeRow] = []
    cal = None  # the work calendar, read once for both review tiers
    for name in OFFICE_METRICS:
        if metric not in (None, name):
            continue
        if name == "dispatch_on_time":
            out += _dispatch_rows(period, as_of)
            continue
        cal = cal or calendar.work_calendar()
        out += _review_rows(name, period, as_of, cal)
    return out


def _label(key: str, users: dict[int, User]) -> str:
    if key == "office":
        return str(_("网评办"))
    if key == "leaders":
        return str(_("局领导(合计)"))
    user = users.get(int(key.split(":")[1]))
    return (user.full_name or user.get_username()) if user else key


def office_row_label(*, key: str) -> str:
    """Return the label of an office table row key (``office``, ``leaders``, ``leader:<id>``)."""
    users = {}
    if key.startswith("leader:") and key[7:].isdigit():
        users = {u.pk: u for u in User.objects.filter(pk=int(key[7:]))}
    return _label(key, users)


def _figures(rows: list[OfficeRow]) -> list[OfficeFigures]:
    acc: dict[str, dict[str, Ratio]] = {"office": {m: Ratio(0, 0) for m in ROW_METRICS["office"]},
                                        "leaders": {m: Ratio(0, 0) for m in ROW_METRICS["leaders"]}}
    for row in rows:
        for who in row.who:
            acc.setdefault(who, {m: Ratio(0, 0) for m in ROW_METRICS["leaders"]})
            acc[who][row.metric] = acc[who].get(row.metric, Ratio(0, 0)) + Ratio(row.num, 1)
    leader_ids = sorted(int(k.split(":")[1]) for k in acc if k.startswith("leader:"))
    users = {u.pk: u for u in User.objects.filter(pk__in=leader_ids)}
    keys = ["office", "leaders", *sorted((k for k in acc if k.startswith("leader:")),
                                         key=lambda k: _label(k, users))]
    return [OfficeFigures(key=k, label=_label(k, users), values=acc[k]) for k in keys]


def office_figures(*, period: Period, as_of: datetime | None = None) -> list[OfficeFigures]:
    """Return the office table for ``period``: the 网评办, the leaders together, then each leader.

    ``values`` holds a :class:`~assessment.selectors.Ratio` per figure of :data:`ROW_METRICS`
    (office: 按时交办率 and 网评办审核按时率; leaders and each leader: 局领导审签按时率), with
    ``Ratio(0, 0)`` when nothing was due. See the module docstring for the definitions.
    """
    return _figures(office_rows(period=period, as_of=as_of))


def office_figures_dump(figures: list[OfficeFigures]) -> dict:
    """Return the office table as JSON for the kept figures: ``{key: {metric: {"num", "den"}}}``, in order."""
    return {fig.key: {m: {"num": r.num, "den": r.den} for m, r in fig.values.items()} for fig in figures}


def office_figures_load(data: dict) -> list[OfficeFigures]:
    """Inverse of :func:`office_figures_dump`, labels read now (one query for the leaders' names)."""
    leader_ids = [int(k.split(":")[1]) for k in data if k.startswith("leader:")]
    users = {u.pk: u for u in User.objects.filter(pk__in=leader_ids)} if leader_ids else {}
    return [OfficeFigures(key=key, label=_label(key, users),
                          values={m: Ratio(v["num"], v["den"]) for m, v in values.items()})
            for key, values in data.items()]


def office_metric_case_ids(*, period: Period, metric: str, part: str, who: str,
                           as_of: datetime | None = None) -> list[int]:
    """Return the ids of the cases behind one office figure (the drill-down), each once.

    Args:
        metric: one of :data:`OFFICE_METRICS`.
        part: ``den`` (every case counted) or ``num`` (those on time).
        who: the table row: ``office``, ``leaders`` or ``leader:<user id>``.

    Raises:
        ValueError: an unknown metric or part.
    """
    if metric not in OFFICE_METRICS or part not in {"num", "den"}:
        raise ValueError(metric)
    ids = []
    for row in office_rows(period=period, as_of=as_of, metric=metric):
        if who in row.who and (part == "den" or row.num):
            ids.append(row.case_id)
    return sorted(set(ids))


def office_figures_by_month(*, months: list[tuple[str, Period]], as_of: datetime) -> list[dict]:
    """Return the office table per month for the dashboard: ``[{month, start, end, rows: [...]}]``.

    Each month's rows equal :func:`office_figures` of that whole month at ``as_of`` — the report's
    figures for ``?start=<month start>&end=<month end>``: the rows of the whole window are read
    once and split by the Beijing month their duty started in (a row depends only on its case's
    own events and clocks, not on the period asked). Each row: ``{key, label, <metric>: {num,
    den, value, small}}``.
    """
    if not months:
        return []
    rows = office_rows(period=Period(months[0][1].start, months[-1][1].end), as_of=as_of)
    out = []
    for month, period in months:
        mine = [r for r in rows if period.start <= r.start < period.end]
        table = []
        for fig in _figures(mine):
            cells = {m: {"num": r.num, "den": r.den, "value": r.value, "small": r.den < MIN_VOLUME}
                     for m, r in fig.values.items()}
            table.append({"key": fig.key, "label": fig.label, **cells})
        out.append({"month": month, "start": period.start.date().isoformat(),
                    "end": (period.end - timedelta(days=1)).date().isoformat(), "rows": table})
    return out
