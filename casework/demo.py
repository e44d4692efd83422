"""The demo bureau's casework: walks real messages through the closed loop by calling the services.

Used by ``manage.py demo_setup`` (which ``make run`` calls). The messages' history is re-based onto
the last twelve months (:mod:`casework.demo_history`) and every step is taken at its time.
Police-related messages are dispatched to the unit the dispatch catalogue suggests and taken as far
as their real reply allows: replied ones are published at their (re-based) reply time with the
platform's official reply as the text, followed up and archived; the others are open today at
every stage of the loop, the older ones overdue so that escalation has work. Messages outside
police business are closed as 不予受理 except the newest few, which stay waiting for dispatch.
Deterministic (fixed seed) and idempotent: cases already moved are left alone.
"""

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
import heapq
import random

from django.core.exceptions import PermissionDenied
from django.utils import timezone

from accounts import roles
from accounts.models import Unit, User
from casework import calendar, escalation, importing, joint, routing, services
from casework.demo_history import clock_at
from casework.models import Case, FollowUp, State

POLICE_KEYWORDS = (
    "公安 派出所 警察 民警 交警 报警 户口 户籍 落户 身份证 出入境 护照 签证 驾驶证 驾照 车管所 "
    "违章 治安 诈骗 传销 无犯罪记录 居住证 暂住证"
).split()

# The stages of the cases still open today, assigned newest first in this order (cycled), so that
# any dozen open cases cover every open state of the loop. Closed cases follow their real reply.
OPEN_STAGES = [
    "dispatched", "handling", "office_review", "leader_review", "handling", "approved",
    "joint_handling", "dispatched", "extension", "office_sent_back", "handling", "returned",
    "leader_review_key",
]
KEEP_REGISTERED_OTHERS = 60
REPLIED_DAYS = 10        # a reply younger than this is still awaiting its follow-up
REJECT_EVERY = 20        # every n-th closed police message was a duplicate (不予受理)
REOPEN_EVERY = 25        # every n-th closed police message was followed up unsatisfied and reopened

@dataclass
class DemoReport:
    walked: Counter = field(default_factory=Counter)
    refused: list[str] = field(default_factory=list)
    escalation: Counter = field(default_factory=Counter)


def is_police_related(case: Case) -> bool:
    """Tell whether a message concerns police business (keyword list from the data's README)."""
    text = case.subject + case.body
    return any(k in text for k in POLICE_KEYWORDS)


def _staff(role: str, unit: Unit | None = None) -> User:
    qs = User.objects.filter(groups__name=role, is_active=True).order_by("id")
    if unit is not None:
        qs = qs.filter(memberships__unit=unit).order_by("memberships__is_head", "id")
    user = qs.first()
    if user is None:
        raise LookupError(f"no active {role} in {unit or 'the bureau'}")
    return user


def demo_walk(*, replies: dict[str, tuple[str, datetime | None]], seed: int = 2026,
              now: datetime | None = None, sweeps: bool = True) -> DemoReport:
    """Take the registered demo cases through the loop, each step at its re-based time.

    A police-related message whose (re-based) official reply lies more than ``REPLIED_DAYS`` in the
    past was dispatched, handled, reviewed, published at that very time, followed up and archived
    (a few were duplicates or reopened); a younger reply awaits its follow-up; a message whose
    reply lies in the future is still open today, at a stage of :data:`OPEN_STAGES`, and its clocks
    run from its real dispatch, so old open cases are overdue and escalate. Other messages are
    closed as 不予受理 except the newest ``KEEP_REGISTERED_OTHERS``. Deterministic and idempotent:
    nothing is done when any case has left ``registered``.

    Args:
        replies: official reply text and re-based reply time (aware) by platform message id
            (:func:`casework.demo_history.rows_rebase`).
        seed: random seed for ratings and co-units.
        now: aware "today" (default: the current time).
        sweeps: run the escalation ladder as the beat would have, every ``SWEEP_EVERY_DAYS``
            over the year, interleaved with the cases' steps (and three times today); the steps
            taken are counted in ``report.escalation``.

    All steps of all cases and sweeps are taken in time order (:func:`_steps_in_time_order`), so
    each case's audit chain is in the order of its times.

    Returns:
        counts of cases per stage and the refusals met (e.g. a reply holding a phone number).
    """
    report = DemoReport()
    if Case.objects.exclude(state=State.REGISTERED).exists():
        return report  # walked before: leave staff's work alone
    now = now or timezone.now()
    rng = random.Random(seed)
    people = {"dispatcher": _staff(roles.DISPATCHER), "reviewer": _staff(roles.OFFICE_REVIEWER),
              "leader": _staff(roles.LEADER)}
    units = list(Unit.objects.filter(is_active=True).exclude(keywords="").order_by("path"))
    districts = [u for u in units if u.kind == Unit.Kind.DISTRICT]
    registered = list(Case.objects.filter(state=State.REGISTERED).order_by("submitted_at", "id"))
    police = [c for c in registered if is_police_related(c)]
    others = [c for c in registered if not is_police_related(c)]

    def reply_of(case):
        return replies.get(case.external_id) or ("", None)

    closed = [c for c in police if reply_of(c)[1] is not None and reply_of(c)[1] <= now - timedelta(hours=1)]
    open_ = sorted((c for c in police if c not in closed), key=lambda c: c.submitted_at, reverse=True)
    while len(open_) < len(OPEN_STAGES) and closed:  # a small file still shows every open state
        open_.append(closed.pop())
    plan = {c.pk: OPEN_STAGES[i % len(OPEN_STAGES)] for i, c in enumerate(open_)}
    for i, case in enumerate(closed):
        replied_at = reply_of(case)[1]
        if i % REJECT_EVERY == REJECT_EVERY - 1:
            plan[case.pk] = "rejected"
        elif replied_at > now - timedelta(days=REPLIED_DAYS):
            plan[case.pk] = "replied"
        elif i % REOPEN_EVERY == REOPEN_EVERY - 2:
            plan[case.pk] = "reopened"
        else:
            plan[case.pk] = "archived"
    if closed and "replied" not in plan.values():  # a small file still shows a reply awaiting follow-up
        for case in sorted(closed, key=lambda c: reply_of(c)[1])[-2:]:
            plan[case.pk] = "replied"

    walks = []
    for case in police:
        stage = plan[case.pk]
        unit = routing.unit_suggest(case=case, units=units) or rng.choice(districts)
        walk = _Walk(case=case, unit=unit, handler=_staff(roles.HANDLER, unit), now=now, rng=rng,
                     reply=reply_of(case), **people)
        walks.append((case.reference, stage, walk.run(stage)))
        report.walked[stage] += 1
    # Messages outside the police's remit are declined by the 网评办 within the day, in time order
    # with everything else, so the 交办 clock's sweeps see them closed (issue 13 §5).
    others.sort(key=lambda c: c.submitted_at)
    for case in others[: max(len(others) - KEEP_REGISTERED_OTHERS, 0)]:
        at = _registered_at(case) + min(timedelta(hours=20), (now - _registered_at(case)) / 2)
        walks.append((case.reference, "out_of_scope", _decline(case=case, at=at, dispatcher=people["dispatcher"])))
        report.walked["out_of_scope"] += 1
    if sweeps:
        walks.append(("", "", _sweeps(now=now, taken=report.escalation)))
    report.refused += _steps_in_time_order(walks)
    return report


def _decline(*, case: Case, at: datetime, dispatcher: User):
    """Yield the moment a message outside the police's remit is declined, then decline it (不予受理)."""
    yield at
    services.case_reject_invalid(case=case, acting_user=dispatcher,
                                 reason="非公安机关职责范围,已告知网民向属地政府反映。")


SWEEP_EVERY_DAYS = 4


def _sweeps(*, now: datetime, taken: Counter):
    """Yield the moments of the ladder's sweeps over the last year, sweeping at each (then today)."""
    moment = now - timedelta(days=365)
    while moment < now - timedelta(hours=1):
        yield moment
        taken.update(escalation.escalation_sweep(now=moment))
        moment += timedelta(days=SWEEP_EVERY_DAYS)
    for _ in range(3):
        yield now
        taken.update(escalation.escalation_sweep(now=timezone.now()))


def _steps_in_time_order(walks: list) -> list[str]:
    """Run generator walks step by step, always the earliest next moment first, each under its clock.

    Args:
        walks: (case reference, stage, generator yielding aware moments) triples.

    Returns:
        the refusals met ("reference: reason"); a refused walk stops there, the others go on.
    """
    refused, heap, order = [], [], 0
    for reference, _stage, walk in walks:
        try:
            first = next(walk)  # the first moment; no step taken yet
        except StopIteration:
            continue
        heapq.heappush(heap, (first, order, reference, walk))
        order += 1
    while heap:
        moment, _n, reference, walk = heapq.heappop(heap)
        try:
            with clock_at(moment):
                upcoming = next(walk)
        except StopIteration:
            continue
        except (services.TransitionRefused, PermissionDenied) as exc:
            refused.append(f"{reference}: {exc}")
            continue
        heapq.heappush(heap, (max(upcoming, moment), order, reference, walk))
        order += 1
    return refused


def units_for_joint(unit: Unit) -> list[Unit]:
    """Units that can take a co-unit task beside ``unit``: the police-type units."""
    return list(Unit.objects.filter(kind=Unit.Kind.POLICE_TYPE, is_active=True).exclude(pk=unit.pk))


def _registered_at(case: Case) -> datetime:
    return case.created_at


@dataclass
class _Walk:
    """One case's history: each step taken at its time under :func:`clock_at`."""

    case: Case
    unit: Unit
    handler: User
    dispatcher: User
    reviewer: User
    leader: User
    now: datetime
    rng: random.Random
    reply: tuple

    def run(self, stage: str):
        """Yield the moment of each next step; the scheduler resumes the walk under that clock."""
        reg = _registered_at(self.case)
        replied_at = self.reply[1]
        end = replied_at if stage in ("replied", "archived", "reopened") else self.now
        span = max(end - reg, timedelta(minutes=30))
        dispatch_at = reg + min(timedelta(hours=2), span / 10)
        if stage == "rejected":
            yield min(dispatch_at, self.now)
            services.case_reject_invalid(case=self.case, acting_user=self.dispatcher,
                                         reason="重复留言,已合并处理。")
            return
        yield min(dispatch_at, self.now)
        case = services.case_dispatch(case=self.case, acting_user=self.dispatcher, unit=self.unit)
        if stage == "dispatched":
            return
        accept_at = dispatch_at + min(timedelta(hours=20), span / 10)
        if stage == "returned":
            yield min(accept_at, self.now)
            services.case_return_to_office(case=case, acting_user=self.handler,
                                           reason="该事项属交警支队管辖,请重新交办。")
            return
        yield min(accept_at, self.now)
        case = services.case_accept(case=case, acting_user=self.handler)
        rest = end - accept_at
        if stage == "handling":
            return
        if stage == "joint_handling":
            yield min(accept_at + rest / 4, self.now)
            co_unit = self.rng.choice(units_for_joint(self.unit))
            task = joint.co_unit_assign(case=case, acting_user=self.dispatcher, unit=co_unit, working_days=3,
                                        task="请协助核查留言所涉情况,并反馈本单位办理意见。")
            if self.rng.random() < 0.5:
                yield min(accept_at + rest / 2, self.now)
                joint.co_unit_report(task=task, acting_user=_staff(roles.HANDLER, co_unit),
                                     report="已核查,情况属实,已配合承办单位处理。")
            return
        if stage == "extension":
            asked_at = accept_at + min(timedelta(hours=20), rest / 4)  # asked before the deadline
            yield min(asked_at, self.now)
            request = joint.extension_request(case=case, acting_user=self.handler, working_days=5,
                                              reason="涉及多个部门,需进一步调查核实。")
            if self.rng.random() < 0.5:
                yield min(asked_at + min(timedelta(hours=4), rest / 4), self.now)
                joint.extension_decide(extension=request, acting_user=self.dispatcher, approve=True,
                                       note="同意延期,请按期办结。")
            return
        # Feedback, review and sign-off in the last part of the interval, the reply at its real time.
        submit_at = end - min(timedelta(days=3), rest * 3 / 10)
        office_at = end - min(timedelta(days=2), rest * 2 / 10)
        leader_at = end - min(timedelta(days=1), rest / 10)
        if stage in ("office_review", "office_sent_back"):
            submit_at, office_at = end - rest / 3, end - rest / 6
        if stage in ("leader_review", "leader_review_key"):
            submit_at, office_at = end - rest / 2, end - rest / 4
        if stage == "approved":
            submit_at, office_at, leader_at = end - rest / 2, end - rest / 3, end - rest / 6
        reply_text = self.reply[0] or "您好!您反映的问题已收悉,经核实,我单位已依法处理。感谢您的监督。"
        yield min(submit_at, self.now)
        services.draft_save(case=case, acting_user=self.handler,
                            handling_report=f"经{self.unit.name}核实:{case.subject}。已联系网民了解情况并依法处理。",
                            policy_basis="《中华人民共和国治安管理处罚法》及相关规定。",
                            measures="加强辖区巡查,完善工作机制。",
                            reply_text=reply_text)
        case = services.case_submit_feedback(case=case, acting_user=self.handler)
        if stage == "office_review":
            return
        if stage == "office_sent_back":
            yield min(office_at, self.now)
            services.case_office_send_back(case=case, acting_user=self.reviewer,
                                           reason="答复未写明政策依据和办理结果,请补充后重新提交。")
            return
        yield min(office_at, self.now)
        if stage == "leader_review_key":
            joint.case_mark_key(case=case, acting_user=self.dispatcher, leader=self.leader)  # 局领导挂帅
        case = services.case_office_approve(case=case, acting_user=self.reviewer,
                                            opinion="事实清楚,依据充分,同意报分管局领导审签。")
        if stage.startswith("leader_review"):
            return
        yield min(leader_at, self.now)
        case = services.case_leader_approve(case=case, acting_user=self.leader, opinion="同意发布。")
        if stage == "approved":
            return
        # The published text is the signed draft itself, published at the platform's (re-based) time.
        yield min(end, self.now)
        case = services.case_publish_reply(case=case, acting_user=self.dispatcher, at=end,
                                           where=f"{case.platform.name} 留言答复页")
        follow_up_at = calendar.add_working_days(end, 2)
        if stage == "replied":
            if follow_up_at <= self.now and self.rng.random() < 0.5:
                yield min(follow_up_at, self.now)
                services.case_record_follow_up(case=case, acting_user=self.dispatcher,
                                               result=self.rng.choice([FollowUp.Result.SATISFIED,
                                                                       FollowUp.Result.BASICALLY]))
            return
        if stage == "reopened":
            yield min(follow_up_at, self.now)
            services.case_record_follow_up(case=case, acting_user=self.dispatcher,
                                           result=FollowUp.Result.UNSATISFIED,
                                           rectification=FollowUp.Rectification.NOT_DONE,
                                           note="网民表示问题仍未解决。")
            services.case_reopen(case=case, acting_user=self.dispatcher,
                                 reason="回访不满意,整改未落实,重新办理。")
            return
        yield min(follow_up_at, self.now)
        services.case_record_follow_up(
            case=case, acting_user=self.dispatcher,
            result=self.rng.choices([FollowUp.Result.SATISFIED, FollowUp.Result.BASICALLY,
                                     FollowUp.Result.UNSATISFIED, FollowUp.Result.UNREACHABLE],
                                    weights=[60, 25, 5, 10])[0],
        )
        yield min(calendar.add_working_days(end, 3), self.now)
        services.case_archive(case=case, acting_user=self.dispatcher)


def demo_import(*, rows: list[dict], platform) -> int:
    """Register re-based rows day by day, each day's messages at the end of that day's last one.

    Args:
        rows: output of :func:`casework.demo_history.rows_rebase` (oldest first).
        platform: the platform they came from.

    Returns:
        the number of cases created (rows already imported are skipped, as by ``import_messages``).
    """
    created = 0
    day_rows: list[dict] = []

    def flush():
        nonlocal created
        if not day_rows:
            return
        last = datetime.fromisoformat(day_rows[-1]["submitted_at"])
        with clock_at(last + timedelta(minutes=5)):
            created += importing.messages_import_records(records=list(day_rows), platform=platform).created
        day_rows.clear()

    for row in rows:
        if day_rows and row["submitted_at"][:10] != day_rows[-1]["submitted_at"][:10]:
            flush()
        day_rows.append(row)
    flush()
    return created
