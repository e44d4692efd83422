"""Reads for casework, starting with the one access rule that every path uses.

The rule (DESIGN.md §1, §8): a superuser sees every case; anyone else sees a case when the case's
lead unit lies inside one of the units they were granted ``accounts.access_unit`` on (a grant
covers the unit's descendants), and users whose grant includes a root unit also see cases not yet
dispatched. A co-unit of a jointly handled case (a ``CoUnitTask`` for a unit in scope) sees that
case too, and nothing else of the lead unit's work. Model-wide permissions never widen this scope.
Acting on a case additionally needs the role permission of the action; acting as the lead unit
needs the lead unit in scope.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta
import re

from django.db.models import (
    BooleanField,
    DateTimeField,
    Exists,
    Expression,
    F,
    Min,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Value,
)
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from accounts.counting import CappedCount, counts_capped
from accounts.models import User
from accounts.selectors import (
    unit_scope_q,
    unit_scope_single_id,
    units_in_scope,
    units_led_by_q,
    user_is_city_wide,
)
from casework import audit, calendar
from casework.access import case_co_unit_task_for, user_can_see_case, user_may_act  # noqa: F401 (the rule's in-memory form)
from casework.models import (
    ACTIVE_STATES,
    Attachment,
    Case,
    CaseEvent,
    CoUnitTask,
    DigestLine,
    DisciplineReferral,
    Extension,
    FollowUp,
    ReplyDraft,
    State,
    SupervisionNotice,
    WorkCalendarDay,
)


def case_scope_q(*, user: User) -> Q:
    """Return the ``Q`` on ``Case`` that selects exactly the cases ``user`` may see."""
    if not user.is_authenticated or not user.is_active:
        return Q(pk__in=[])
    if user.is_superuser:
        return Q()
    # Within the OR, the lead unit as ``lead_unit_id = ANY(ARRAY(…))`` (:class:`ColumnIn`), which an
    # index scan takes next to a state; ``IN (SELECT …)`` under an OR is a filter checked row by row.
    q = _lead_unit_of_scope_q(user=user)
    if user_is_city_wide(user=user):
        q |= Q(lead_unit__isnull=True)
    # Co-units: a subquery on the few granted unit paths, never a list of case ids (C18).
    co_units = CoUnitTask.objects.filter(unit_scope_q(user=user, prefix="unit__")).order_by().values("case_id")
    q |= Q(CaseIdIn(co_units))
    return q


def lead_unit_in_scope_q(*, user: User) -> Q:
    """Return the ``Q`` on ``Case`` of the cases whose lead unit lies in ``user``'s scope (superusers: all).

    Written as ``lead_unit_id IN (SELECT id FROM accounts_unit WHERE path LIKE …)`` rather than a
    join to the unit: the condition stays on the case table alone, and its size does not grow with
    the data (field case C18). AND-ed with a queue's state, PostgreSQL turns it into a semi-join
    and reads the (lead unit, state) index: a handler's 发回修改 queue reads its 952 cases, where
    ``= ANY(ARRAY(…))`` made it walk the 90,000 承办中 cases in the queue's order (issue 11 §3).
    Under the access rule's OR, :func:`case_scope_q` writes it with :class:`ColumnIn`. A scope of
    one unit (a handler of a unit without sub-units) is ``lead_unit_id = <id>``: the 待签收 and
    承办中 queues are then read in their order and stop at the page (at 1,000,000 cases 115 → 81
    ms and 158 → 125 ms for a district handler).
    """
    if user.is_superuser and user.is_active:
        return Q()
    single = unit_scope_single_id(user=user)
    if single is not None:  # one unit: ``= <id>``, read in the queue's order from its (lead unit, …) index
        return Q(lead_unit_id=single)
    return Q(lead_unit_id__in=units_in_scope(user=user).values("pk"))


def _lead_unit_of_scope_q(*, user: User) -> Q:
    """The lead unit of the scope for the access rule's OR: ``= <id>`` for a one-unit scope (read
    in order from the (lead unit, …) indexes), else :class:`ColumnIn` of the scope's units."""
    single = unit_scope_single_id(user=user)
    if single is not None:
        return Q(lead_unit_id=single)
    return Q(ColumnIn("lead_unit_id", units_in_scope(user=user).order_by().values("pk")))


def cases_visible_to(*, user: User, queryset: QuerySet[Case] | None = None) -> QuerySet[Case]:
    """Return the cases ``user`` may see, narrowing ``queryset`` (default: all cases)."""
    qs = queryset if queryset is not None else Case.objects.all()
    return qs.filter(case_scope_q(user=user))


# ---------------------------------------------------------------- 督办单: who answers for it


def notices_awaiting_answer_q(*, prefix: str = "") -> Q:
    """Return the ``Q`` on ``SupervisionNotice`` of the 督办单 still awaiting their unit's answer.

    The one attribution rule of a 督办单 (issue 8 §3), used by the ladder's unit-notices rung, the
    notice list, the unit tile and anything that counts a unit's open notices. A notice belongs to
    the unit it was addressed to (``unit``, the lead unit when it was opened) for good: it is counted
    in that unit's 督办单 figure of the period it was opened in, whatever happens to the case later.
    It *awaits an answer* only while that unit can still see the case and act on it:

    * not answered and not closed (``answered_at`` and ``closed_at`` empty);
    * the case is active (not replied, archived, merged away or rejected);
    * the addressed unit still leads the case. When the unit returns the case to the 网评办, its
      open notices are closed (``closed_reason`` 案件已退回网评办, see
      ``casework.services.case_return_to_office``); this last condition also covers any other
      path that moves the lead unit, so a notice of unit A never weighs on A once B holds the case.
      Exception (issue 13): a notice opened by hand for a co-unit (``to_co_unit``) awaits that
      co-unit's answer while the case is active.

    Args:
        prefix: the lookup from the queried model to the notice (e.g. ``"supervision_notices__"``).
    """
    return Q(**{
        f"{prefix}answered_at__isnull": True,
        f"{prefix}closed_at__isnull": True,
        f"{prefix}case__state__in": ACTIVE_STATES,
    }) & (Q(**{f"{prefix}case__lead_unit_id": F(f"{prefix}unit_id")})
          # issue 13: a notice opened by hand for a co-unit awaits it while the case is active
          | Q(**{f"{prefix}to_co_unit": True}))


def notices_awaiting_answer(*, queryset: QuerySet[SupervisionNotice] | None = None) -> QuerySet[SupervisionNotice]:
    """Return the 督办单 awaiting their unit's answer (see :func:`notices_awaiting_answer_q`)."""
    qs = queryset if queryset is not None else SupervisionNotice.objects.all()
    return qs.filter(notices_awaiting_answer_q())


def notice_awaits_answer(*, notice: SupervisionNotice) -> bool:
    """Tell, in memory, whether ``notice`` awaits its unit's answer (same rule as the ``Q``)."""
    return (notice.answered_at is None and notice.closed_at is None
            and notice.case.state in ACTIVE_STATES
            and (notice.case.lead_unit_id == notice.unit_id or notice.to_co_unit))


def notices_for_unit_staff(*, user: User) -> QuerySet[SupervisionNotice]:
    """Return the 督办单 awaiting an answer from a unit in ``user``'s scope (the unit tile).

    Superusers get every open notice. Each of these is one the user can open (the unit leads the
    case, so the case is in scope) and answer, given ``casework.answer_supervision``.
    """
    return notices_awaiting_answer().filter(unit_scope_q(user=user, prefix="unit__"))


def case_get_for_user(*, user: User, pk: int) -> Case:
    """Return case ``pk`` if ``user`` may see it.

    Raises:
        Case.DoesNotExist: when the case does not exist *or* is outside the user's scope (the two
        are indistinguishable on purpose: callers answer 404).
    """
    return cases_visible_to(user=user).select_related("lead_unit", "platform").get(pk=pk)


def case_merge_links(*, user: User, case: Case) -> dict:
    """Return what ``user`` may be shown of ``case``'s merge links, for its page.

    Keys: ``merged_cases`` (the duplicates merged into ``case`` that the user may open, with
    ``pk``, ``reference``, ``subject``), ``merged_hidden`` (how many others there are, counted
    without revealing them) and ``merged_into_visible`` (whether the user may open the main case
    ``case`` was merged into). The one access rule decides (:func:`cases_visible_to`).
    """
    duplicates = case.merged_cases.all()
    visible = list(cases_visible_to(user=user, queryset=duplicates).only("pk", "reference", "subject")
                   .order_by("pk"))
    main_visible = bool(case.merged_into_id) and cases_visible_to(user=user).filter(pk=case.merged_into_id).exists()
    return {
        "merged_cases": visible,
        "merged_hidden": duplicates.count() - len(visible),
        "merged_into_visible": main_visible,
    }


def case_timeline(*, case: Case) -> QuerySet[CaseEvent]:
    """Return the audit events of ``case`` in order, with their actors."""
    return case.events.select_related("actor").order_by("seq")


def case_current_draft(*, case: Case) -> ReplyDraft | None:
    """Return the newest draft of the case's current handling round, or None."""
    return case.drafts.filter(round=case.handling_round).order_by("-version").first()


def case_audit_verify(*, case: Case) -> bool:
    """Check ``case``'s keyed hash chain and its sealed head; False if any event was altered or removed.

    See :func:`casework.audit.case_chain_problems` for the reasons (the scheduled run also checks
    the external anchor).
    """
    return not audit.case_chain_problems(case=case)


# A case number as the site writes it (JB-2026-000123) or a platform's message id written the same
# way: letters, then groups of digits joined by hyphens.
REFERENCE_SHAPE = re.compile(r"^[A-Za-z]{1,10}(?:-\d+)+$")


def cases_by_reference_q(*, term: str) -> Q | None:
    """Return the ``Q`` of the case whose reference (or platform message id) is ``term``, or None.

    None when ``term`` is not shaped like a case number (letters, then hyphenated digit groups,
    e.g. ``JB-2026-000123``, or its beginning ``JB-2026-0001``); the caller then searches the text.
    Matched as a prefix (references are stored upper-case), so PostgreSQL reads the
    ``varchar_pattern_ops`` indexes on ``reference`` and ``external_id`` (migration 0010) instead of
    every case (issue 11 §3).
    """
    term = (term or "").strip()
    if not REFERENCE_SHAPE.match(term):
        return None
    return (Q(reference__startswith=term.upper()) | Q(external_id__startswith=term)
            | Q(external_id__startswith=term.upper()))


def cases_overdue_q(*, now: datetime) -> Q:
    """Return the ``Q`` of cases past a running clock at ``now`` (an aware datetime).

    The sign-for clock runs while a case waits to be signed for; the reply clock runs from
    dispatch until the reply is published.
    """
    return Q(state=State.DISPATCHED, sign_for_due_at__lt=now) | Q(
        state__in=ACTIVE_STATES, reply_due_at__lt=now
    )


def cases_overdue_in_scope_q(*, user: User, now: datetime) -> Q:
    """Return :func:`cases_overdue_q` at ``now`` for ``user``'s list, in the form its indexes serve.

    For a list already narrowed to what ``user`` may see (the admin's queryset): the same rows as
    ``cases_overdue_q``. For a unit's staff it repeats the scope inside each arm of the OR ("a
    lead unit of the scope and its sign-for deadline passed", "… its reply deadline passed", "a
    co-unit case of the scope, either passed"), so PostgreSQL reads the (lead unit, deadline)
    indexes and visits the unit's overdue cases only; AND-ed with the access rule's own OR, the
    plain form read every overdue case of the bureau and kept the unit's (20,000 heap rows for
    950 at 1,000,000 cases, issue 11 §3). Superusers and city-wide roles see every unit: the plain
    form. ``now`` is an aware datetime.
    """
    overdue = cases_overdue_q(now=now)
    if not user.is_authenticated or not user.is_active:
        return Q(pk__in=[])
    if user.is_superuser or user_is_city_wide(user=user):
        return overdue
    units = _lead_unit_of_scope_q(user=user)
    co_units = CoUnitTask.objects.filter(unit_scope_q(user=user, prefix="unit__")).order_by().values("case_id")
    return (
        (units & Q(state=State.DISPATCHED, sign_for_due_at__lt=now))
        | (units & Q(state__in=ACTIVE_STATES, reply_due_at__lt=now))
        | (Q(CaseIdIn(co_units)) & overdue)
    )


# ---------------------------------------------------------------- work queues ("my work")


class ColumnIn(Expression):
    """The condition "the row's ``column`` is one of the values of ``rows``" (a filter).

    On PostgreSQL it is ``column = ANY(ARRAY(SELECT …))``: the few values are read once, before the
    statement runs, and the condition is one the planner can put into an index scan, alone or next to
    another condition (``state = … AND lead_unit_id = ANY(…)`` reads the state's index range, not
    every case). A plain ``column IN (SELECT …)`` is a hashed filter that no index serves: joined by
    ``OR`` (the access rule's lead unit or co-unit) it made PostgreSQL walk a list's index and check
    row after row, 140,000 of them for one page of a handler's 承办中 list (issue 11 §3).
    Elsewhere it is ``column IN (SELECT …)``.

    Args:
        column: the field name on the filtered model (``"pk"``, ``"lead_unit_id"``).
        rows: a queryset of ``values(<one field>)``.
    """

    conditional = True
    output_field = BooleanField()

    def __init__(self, column: str, rows: QuerySet):
        super().__init__(output_field=BooleanField())
        self.lhs = F(column)
        self.rows = Subquery(rows)

    def get_source_expressions(self):
        return [self.lhs, self.rows]

    def set_source_expressions(self, exprs):
        self.lhs, self.rows = exprs

    def as_sql(self, compiler, connection):
        lhs, lhs_params = compiler.compile(self.lhs)
        rows, rows_params = compiler.compile(self.rows)
        return f"{lhs} IN {rows}", [*lhs_params, *rows_params]

    def as_postgresql(self, compiler, connection):
        lhs, lhs_params = compiler.compile(self.lhs)
        rows, rows_params = compiler.compile(self.rows)
        return f"{lhs} = ANY(ARRAY{rows})", [*lhs_params, *rows_params]


class CaseIdIn(ColumnIn):
    """The condition "the row's primary key is one of the ``case_id`` s of ``rows``" (a filter).

    On PostgreSQL it is ``id = ANY(ARRAY(SELECT case_id …))``: the few ids are read once and the
    cases fetched through the primary key index. A plain ``id IN (SELECT …)`` lets the planner walk
    a list's index in order hoping to meet the few matching cases early, which reads a million
    rows when they are rare (issue 11 §3). Elsewhere it is ``id IN (SELECT …)``.

    Args:
        rows: a queryset of ``values("case_id")`` (any model with a ``case`` foreign key).
    """

    def __init__(self, rows: QuerySet):
        super().__init__("pk", rows)


@dataclass(frozen=True)
class QueueSpec:
    """One work queue: its key, label, the role permission that shows it and the clock it runs on."""

    key: str
    label: str
    perm: str
    clock: str  # "sign_for", "reply", "co_unit", "extension", "referral" or "" (no clock)


QUEUES = [
    QueueSpec("sign_for", _("待签收"), "accept_case", "sign_for"),
    QueueSpec("handling", _("承办中"), "accept_case", "reply"),
    QueueSpec("sent_back", _("发回修改"), "accept_case", "reply"),
    QueueSpec("co_unit", _("协办待报告"), "accept_case", "co_unit"),
    QueueSpec("to_dispatch", _("待交办"), "dispatch_case", ""),
    QueueSpec("returned", _("退回待裁定"), "dispatch_case", ""),
    QueueSpec("extension", _("延期待批"), "decide_extension", "extension"),
    QueueSpec("to_publish", _("待发布"), "publish_reply", "reply"),
    QueueSpec("follow_up", _("待回访"), "follow_up_case", ""),
    QueueSpec("office_review", _("待审核"), "office_review_case", "reply"),
    QueueSpec("leader_review", _("待审签"), "leader_review_case", "reply"),
    QueueSpec("key_cases", _("挂帅的重点难点案件"), "leader_review_case", "reply"),
    QueueSpec("referrals_open", _("纪检移交·待处理"), "record_referral_outcome", "referral"),
    QueueSpec("referrals_done", _("纪检移交·已有结果"), "record_referral_outcome", ""),
]
QUEUES_BY_KEY = {q.key: q for q in QUEUES}
# Queues whose cases are the case ids of a few rows of open work in another table (unreported
# co-unit tasks, pending extensions, open referrals; :class:`CaseIdIn`): their lists are read once
# for the date drill-down instead of probed bucket by bucket (``accounts.admin_lists``).
QUEUES_OF_OPEN_ROWS = frozenset({"co_unit", "extension", "referrals_open"})


def queues_for_user(*, user: User) -> list[QueueSpec]:
    """Return the work queues of ``user``'s roles, in display order (by role permission)."""
    if not user.is_authenticated or not user.is_active:
        return []
    return [q for q in QUEUES if user.has_perm(f"casework.{q.perm}")]


def case_queue(*, user: User, key: str, queryset: QuerySet[Case] | None = None,
               visible: bool = False) -> QuerySet[Case]:
    """Return the cases of work queue ``key`` for ``user``, annotated with ``queue_due``.

    Always narrowed by the one access rule, so a queue's count is the number of its cases the user
    can open. ``queue_due`` is the deadline of the queue's clock (None when it has none); order
    by it, nulls last, to see what is due first.

    Args:
        queryset: the cases to take the queue from (default: all cases).
        visible: ``queryset`` is already :func:`cases_visible_to` ``user`` (the case list's, from
            the admin's ``get_queryset``), so the rule is not applied twice. Twice, every statement
            of the page carried it twice, and PostgreSQL, multiplying the two conditions'
            selectivities, took a unit's 6,000 承办中 cases for 360 and sorted them all rather than
            read the queue's index in order (issue 11 §3).

    Raises:
        KeyError: for an unknown ``key``.
    """
    spec = QUEUES_BY_KEY[key]
    qs = queryset if visible and queryset is not None else cases_visible_to(user=user, queryset=queryset)
    lead = lead_unit_in_scope_q(user=user)
    own_tasks = CoUnitTask.objects.filter(case=OuterRef("pk"), reported_at__isnull=True)
    if not user.is_superuser:
        own_tasks = own_tasks.filter(unit_scope_q(user=user, prefix="unit__"))
    pending_ext = Extension.objects.filter(case=OuterRef("pk"), decision=Extension.Decision.PENDING)
    open_ref = DisciplineReferral.objects.filter(case=OuterRef("pk"), outcome_recorded_at__isnull=True)
    followed = FollowUp.objects.filter(case=OuterRef("pk"), round=OuterRef("handling_round"))
    led = Q()
    if key == "leader_review" and not user.is_superuser:
        led = units_led_by_q(user=user, prefix="lead_unit__") | Q(key_case_leader_id=user.pk)
    # The queues kept by a few rows of another table (co-unit tasks, pending extensions, referrals)
    # select the cases by primary key from those rows' case ids (:class:`CaseIdIn`), so
    # PostgreSQL starts from the small table, never checks every case against an EXISTS (issue 11 §3).
    def case_ids(rows):
        return CaseIdIn(rows.order_by().values("case_id"))

    own_task_rows = CoUnitTask.objects.filter(reported_at__isnull=True)
    if not user.is_superuser:
        own_task_rows = own_task_rows.filter(unit_scope_q(user=user, prefix="unit__"))
    pending_rows = Extension.objects.filter(decision=Extension.Decision.PENDING)
    open_rows = DisciplineReferral.objects.filter(outcome_recorded_at__isnull=True)
    done_rows = DisciplineReferral.objects.filter(outcome_recorded_at__isnull=False)
    filters = {
        "sign_for": lead & Q(state=State.DISPATCHED),
        "handling": lead & Q(state=State.HANDLING, feedback_at__isnull=True),
        "sent_back": lead & Q(state=State.HANDLING, feedback_at__isnull=False),
        "co_unit": Q(case_ids(own_task_rows), state__in=[State.DISPATCHED, State.HANDLING]),
        "to_dispatch": Q(state=State.REGISTERED, handling_round=1),
        "returned": Q(state=State.REGISTERED, handling_round__gt=1),
        "extension": Q(case_ids(pending_rows)),
        "to_publish": Q(state=State.APPROVED),
        "follow_up": Q(state=State.REPLIED) & ~Q(Exists(followed)),
        "office_review": Q(state=State.OFFICE_REVIEW),
        # Tier 3 waits for the leader in charge (分管) of the lead unit, or the key case's leader.
        "leader_review": Q(state=State.LEADER_REVIEW) & led,
        "key_cases": Q(key_case_leader_id=user.pk) & ~Q(state=State.ARCHIVED),
        "referrals_open": Q(case_ids(open_rows)),
        "referrals_done": Q(case_ids(done_rows)) & ~Q(case_ids(open_rows)),
    }
    qs = qs.filter(filters[key])
    due = {
        "sign_for": F("sign_for_due_at"),
        "reply": F("reply_due_at"),
        "co_unit": Subquery(own_tasks.order_by().values("case").annotate(m=Min("due_at")).values("m")[:1]),
        "extension": Subquery(pending_ext.order_by("old_due_at").values("old_due_at")[:1]),
        "referral": Subquery(open_ref.order_by("created_at").values("created_at")[:1]),
    }.get(spec.clock, Value(None, output_field=DateTimeField()))
    return qs.annotate(queue_due=due)


def queue_counts(*, user: User, cap: int | None = None) -> list[tuple[QueueSpec, CappedCount]]:
    """Return ``user``'s queues with the number of cases in each, counted up to ``cap`` (one query).

    Each count is a :class:`CappedCount`: exact up to ``cap`` (default ``CASEWORK_LIST_COUNT_CAP``),
    shown as "1000+" beyond it, so a tile never counts a million rows (issue 11 §3).
    """
    specs = queues_for_user(user=user)
    counts = counts_capped(querysets=[case_queue(user=user, key=spec.key) for spec in specs], cap=cap)
    return list(zip(specs, counts, strict=True))


def case_clock_due(*, case: Case):
    """Return ``(clock label, deadline)`` of the clock running on ``case`` now, or ``("", None)``.

    A registered (undispatched) case shows the 网评办's 交办 clock (issue 13 §5); a dispatched one
    its unit's 签收 clock; any other active case its 答复 clock.
    """
    if case.state == State.REGISTERED:
        return _("交办"), case.dispatch_due_at
    if case.state == State.DISPATCHED:
        return _("签收"), case.sign_for_due_at
    if case.state in ACTIVE_STATES:
        return _("答复"), case.reply_due_at
    return "", None


@dataclass(frozen=True)
class ClockMark:
    """How a running clock stands: ``status`` is ``overdue``, ``due_soon`` or ``ok``; ``text`` in words."""

    status: str
    text: str


def clock_mark(*, due, now=None, exceptions: dict | None = None) -> ClockMark | None:
    """Return how the clock with deadline ``due`` stands at ``now``, or None when no clock runs.

    Red (``overdue``) once the deadline has passed; amber (``due_soon``) when at most one working day
    is left (due today or on the next working day), as the 12345 platforms mark cases; else ``ok``.

    Args:
        due: an aware deadline, or None.
        now: an aware "now" (default: the current time).
        exceptions: calendar rows ``{date: is_workday}`` covering the range, when the caller loaded
            them for many cases at once (see :func:`calendar_exceptions_around`); else one query.
    """
    if due is None:
        return None
    now = now or timezone.now()
    a = timezone.localtime(now, calendar.SHANGHAI).date()
    b = timezone.localtime(due, calendar.SHANGHAI).date()
    if exceptions is None:
        exceptions = calendar_exceptions_around(dates=[a, b])
    lo, hi = sorted([a, b])
    days = 0
    day = lo
    while day < hi:
        day += timedelta(days=1)
        if calendar.is_working_day(day, exceptions):
            days += 1
    if due >= now:
        if days == 0:
            text = str(_("今日 %s 到期")) % timezone.localtime(due, calendar.SHANGHAI).strftime("%H:%M")
        else:
            text = ngettext("剩 %d 个工作日", "剩 %d 个工作日", days) % days
        return ClockMark("due_soon" if days <= 1 else "ok", text)
    if days == 0:
        return ClockMark("overdue", str(_("今日已超期")))
    return ClockMark("overdue", ngettext("已超期 %d 个工作日", "已超期 %d 个工作日", days) % days)


def working_time_left(*, due, now=None, exceptions: dict | None = None) -> str:
    """Describe the working time left until ``due`` in words (剩 3 个工作日 / 今日 17:00 到期 / 已超期 2 个工作日).

    Arguments as :func:`clock_mark`; returns "" when ``due`` is None.
    """
    mark = clock_mark(due=due, now=now, exceptions=exceptions)
    return mark.text if mark else ""


def calendar_exceptions_around(*, dates) -> dict:
    """Load the work-calendar exceptions between the earliest and latest of ``dates`` (one query)."""
    dates = [d for d in dates if d is not None]
    if not dates:
        return {}
    return dict(
        WorkCalendarDay.objects.filter(date__gte=min(dates), date__lte=max(dates)).values_list(
            "date", "is_workday"
        )
    )


def digest_case_ids(*, key: str) -> QuerySet:
    """The ids of the cases one escalation digest e-mail covers, as a subquery.

    Args:
        key: the digest's outbox key (``digest:<level>:…``, carried by the e-mail's link to the
            case list); any other text matches no case.

    Returns:
        A ``values("case_id")`` queryset of the cases whose ladder steps the e-mail lists,
        every one, not only those it shows line by line (``casework.escalation``). Not scoped:
        filter a queryset the user may see with it.
    """
    return DigestLine.objects.filter(notification__key=key).values("step__case_id")


def cases_followed_up(*, case_ids: list[int]) -> list[int]:
    """Return the ids among ``case_ids`` whose current handling round has a 回访 record."""
    done = FollowUp.objects.filter(case_id=OuterRef("pk"), round=OuterRef("handling_round"))
    return list(Case.objects.filter(pk__in=case_ids).filter(Exists(done)).values_list("pk", flat=True))


def attachment_get_for_user(*, user: User, pk: int):
    """Return attachment ``pk`` if ``user`` may see its case (the one access rule of cases).

    Raises:
        Attachment.DoesNotExist: the attachment does not exist *or* its case is outside the user's
        scope (indistinguishable on purpose: the download view answers 404).
    """
    attachment = Attachment.objects.select_related("case__lead_unit").get(pk=pk)
    if not cases_visible_to(user=user).filter(pk=attachment.case_id).exists():
        raise Attachment.DoesNotExist
    return attachment
