"""The demo bureau's casework: walks real messages through the closed loop by calling the services.

Used by ``manage.py demo_setup`` (which ``make run`` calls). Police-related messages are dispatched
to the unit the dispatch catalogue suggests and taken to every state of the loop, with the
platform's official reply as the published text; some are left overdue so that escalation has
work. Messages outside police business are closed as 不予受理 except the newest few, which stay
waiting for dispatch. Deterministic (fixed seed) and idempotent: cases already moved are left alone.
"""

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
import random

from django.core.exceptions import PermissionDenied
from django.utils import timezone

from accounts import roles
from accounts.models import Unit, User
from casework import calendar, joint, routing, services
from casework.models import Case, FollowUp, State

POLICE_KEYWORDS = (
    "公安 派出所 警察 民警 交警 报警 户口 户籍 落户 身份证 出入境 护照 签证 驾驶证 驾照 车管所 "
    "违章 治安 诈骗 传销 无犯罪记录 居住证 暂住证"
).split()

# Share of police-related cases ending in each state, per 40 cases (cycled, so any 40 consecutive
# cases cover every state of the loop).
PLAN = [
    ("dispatched_fresh", 2),
    ("dispatched_sign_for_overdue", 1),
    ("handling", 2),
    ("handling_overdue", 2),
    ("joint_handling", 1),
    ("extension", 1),
    ("office_review", 1),
    ("office_sent_back", 1),
    ("leader_review", 1),
    ("approved", 1),
    ("replied", 4),
    ("reopened", 1),
    ("returned", 1),
    ("rejected", 1),
    ("archived", 22),
]
KEEP_REGISTERED_OTHERS = 60


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


def demo_walk(*, replies: dict[str, tuple[str, datetime | None]], seed: int = 2026) -> DemoReport:
    """Take the registered demo cases through the loop; see the module docstring.

    Args:
        replies: official reply text and time by platform message id (from the data file).
        seed: random seed for the choice of units' ages and ratings.

    Returns:
        counts of cases per plan bucket and the refusals met (e.g. a reply holding a phone number).
    """
    report = DemoReport()
    if Case.objects.exclude(state=State.REGISTERED).exists():
        return report  # walked before: leave staff's work alone
    rng = random.Random(seed)
    dispatcher = _staff(roles.DISPATCHER)
    reviewer = _staff(roles.OFFICE_REVIEWER)
    leader = _staff(roles.LEADER)
    units = list(Unit.objects.filter(is_active=True).exclude(keywords="").order_by("path"))
    districts = [u for u in units if u.kind == Unit.Kind.DISTRICT]
    registered = list(Case.objects.filter(state=State.REGISTERED).order_by("submitted_at", "id"))
    police = [c for c in registered if is_police_related(c)]
    others = [c for c in registered if not is_police_related(c)]
    rng.shuffle(police)

    pattern: list[str] = []
    for name, count in PLAN:
        pattern += [name] * count
    rng.shuffle(pattern)
    buckets = [pattern[i % len(pattern)] for i in range(len(police))]
    now = timezone.now()

    for case, bucket in zip(police, buckets, strict=False):
        unit = routing.unit_suggest(case=case, units=units) or rng.choice(districts)
        handler = _staff(roles.HANDLER, unit)
        try:
            _walk_one(case=case, bucket=bucket, unit=unit, handler=handler, dispatcher=dispatcher,
                      reviewer=reviewer, leader=leader, reply=replies.get(case.external_id),
                      now=now, rng=rng)
            report.walked[bucket] += 1
        except (services.TransitionRefused, PermissionDenied) as exc:
            report.refused.append(f"{case.reference}: {exc}")

    others.sort(key=lambda c: c.submitted_at)
    for case in others[: max(len(others) - KEEP_REGISTERED_OTHERS, 0)]:
        services.case_reject_invalid(case=case, acting_user=dispatcher,
                                     reason="非公安机关职责范围,已告知网民向属地政府反映。")
        report.walked["out_of_scope"] += 1
    return report


def units_for_joint(unit: Unit) -> list[Unit]:
    """Units that can take a co-unit task beside ``unit``: the police-type units."""
    return list(Unit.objects.filter(kind=Unit.Kind.POLICE_TYPE, is_active=True).exclude(pk=unit.pk))


def _walk_one(*, case, bucket, unit, handler, dispatcher, reviewer, leader, reply, now, rng) -> None:
    if bucket == "rejected":
        services.case_reject_invalid(case=case, acting_user=dispatcher, reason="重复留言,已合并处理。")
        return
    age = {
        "dispatched_sign_for_overdue": rng.choice([2, 4, 7]),
        "handling_overdue": rng.choice([2, 5, 9, 16]),
    }.get(bucket, 0)
    dispatched_at = calendar.subtract_working_days(now, age) if age else now - timedelta(minutes=5)
    case = services.case_dispatch(case=case, acting_user=dispatcher, unit=unit, at=dispatched_at)
    if bucket.startswith("dispatched"):
        return
    if bucket == "returned":
        services.case_return_to_office(case=case, acting_user=handler,
                                       reason="该事项属交警支队管辖,请重新交办。")
        return
    case = services.case_accept(case=case, acting_user=handler)
    if bucket in ("handling", "handling_overdue"):
        return
    if bucket == "joint_handling":
        # 多警种联动: a second unit checks its part; about half have reported already.
        co_unit = rng.choice(units_for_joint(unit))
        task = joint.co_unit_assign(case=case, acting_user=dispatcher, unit=co_unit, working_days=3,
                                    task="请协助核查留言所涉情况,并反馈本单位办理意见。")
        if rng.random() < 0.5:
            joint.co_unit_report(task=task, acting_user=_staff(roles.HANDLER, co_unit),
                                 report="已核查,情况属实,已配合承办单位处理。")
        return
    if bucket == "extension":
        request = joint.extension_request(case=case, acting_user=handler, working_days=5,
                                          reason="涉及多个部门,需进一步调查核实。")
        if rng.random() < 0.5:
            joint.extension_decide(extension=request, acting_user=dispatcher, approve=True,
                                   note="同意延期,请按期办结。")
        return
    reply_text = (reply[0] if reply else "") or "您好!您反映的问题已收悉,经核实,我单位已依法处理。感谢您的监督。"
    services.draft_save(case=case, acting_user=handler,
                        handling_report=f"经{unit.name}核实:{case.subject}。已联系网民了解情况并依法处理。",
                        policy_basis="《中华人民共和国治安管理处罚法》及相关规定。",
                        measures="加强辖区巡查,完善工作机制。",
                        reply_text=reply_text)
    case = services.case_submit_feedback(case=case, acting_user=handler)
    if bucket == "office_sent_back":
        services.case_office_send_back(case=case, acting_user=reviewer,
                                       reason="答复未写明政策依据和办理结果,请补充后重新提交。")
        return
    if bucket == "office_review":
        return
    if bucket == "leader_review" and rng.random() < 0.5:
        joint.case_mark_key(case=case, acting_user=dispatcher, leader=leader)  # 局领导挂帅
    case = services.case_office_approve(case=case, acting_user=reviewer,
                                        opinion="事实清楚,依据充分,同意报分管局领导审签。")
    if bucket == "leader_review":
        return
    case = services.case_leader_approve(case=case, acting_user=leader, opinion="同意发布。")
    if bucket == "approved":
        return
    # The published text is the signed draft itself (the service takes no other text).
    case = services.case_publish_reply(case=case, acting_user=dispatcher,
                                       where=f"{case.platform.name} 留言答复页")
    if bucket == "replied":
        if rng.random() < 0.5:
            services.case_record_follow_up(case=case, acting_user=dispatcher,
                                           result=rng.choice([FollowUp.Result.SATISFIED,
                                                              FollowUp.Result.BASICALLY]))
        return
    if bucket == "reopened":
        services.case_record_follow_up(case=case, acting_user=dispatcher,
                                       result=FollowUp.Result.UNSATISFIED,
                                       rectification=FollowUp.Rectification.NOT_DONE,
                                       note="网民表示问题仍未解决。")
        services.case_reopen(case=case, acting_user=dispatcher, reason="回访不满意,整改未落实,重新办理。")
        return
    services.case_record_follow_up(
        case=case, acting_user=dispatcher,
        result=rng.choices([FollowUp.Result.SATISFIED, FollowUp.Result.BASICALLY,
                            FollowUp.Result.UNSATISFIED, FollowUp.Result.UNREACHABLE],
                           weights=[60, 25, 5, 10])[0],
    )
    services.case_archive(case=case, acting_user=dispatcher)
