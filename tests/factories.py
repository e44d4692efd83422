"""Factories and helpers that build units, staff and cases through the services."""

from datetime import datetime
import threading
from zoneinfo import ZoneInfo

from django.db import connection

from accounts import roles
from accounts.models import Unit, User
from accounts.services import membership_add, unit_access_grant, unit_create, user_role_set
from casework import services
from casework.models import Case, Platform, State

SHANGHAI = ZoneInfo("Asia/Shanghai")


def make_user(username: str, *, role: str | None = None, unit: Unit | None = None,
              is_head: bool = False, city_wide: Unit | None = None) -> User:
    """Create an active staff user with an e-mail, optional role group and unit membership."""
    user = User.objects.create_user(
        username=username, password="pw", email=f"{username}@bureau.invalid", is_staff=True,
        full_name=username,
    )
    if role:
        user_role_set(user=user, role_codes=[role])
    if unit:
        membership_add(user=user, unit=unit, is_head=is_head)
    if city_wide:
        unit_access_grant(user=user, unit=city_wide)
    return user


class Bureau:
    """A small bureau: city root, 网评办, 纪检督察, 局领导, districts A and B, and one user per role."""

    def __init__(self) -> None:
        self.city = unit_create(name="市公安局", code="city", kind=Unit.Kind.BUREAU)
        self.office = unit_create(name="网评办", code="wpb", kind=Unit.Kind.OFFICE, parent=self.city,
                                  function=Unit.Function.COMMENT_OFFICE)
        self.discipline = unit_create(name="纪检督察", code="jjdc", kind=Unit.Kind.OFFICE,
                                      parent=self.city, function=Unit.Function.DISCIPLINE)
        self.leadership = unit_create(name="局领导", code="leaders", kind=Unit.Kind.OFFICE,
                                      parent=self.city, function=Unit.Function.LEADERSHIP)
        self.unit_a = unit_create(name="雨湖分局", code="yuhu", kind=Unit.Kind.DISTRICT, parent=self.city)
        self.unit_b = unit_create(name="岳塘分局", code="yuetang", kind=Unit.Kind.DISTRICT, parent=self.city)
        self.dispatcher = make_user("dispatcher", role=roles.DISPATCHER, unit=self.office, city_wide=self.city)
        self.reviewer = make_user("reviewer", role=roles.OFFICE_REVIEWER, unit=self.office, city_wide=self.city)
        self.leader = make_user("leader", role=roles.LEADER, unit=self.leadership, city_wide=self.city)
        self.supervisor = make_user("supervisor", role=roles.SUPERVISOR, unit=self.discipline,
                                    city_wide=self.city)
        self.handler_a = make_user("handler_a", role=roles.HANDLER, unit=self.unit_a)
        self.head_a = make_user("head_a", unit=self.unit_a, is_head=True)
        self.handler_b = make_user("handler_b", role=roles.HANDLER, unit=self.unit_b)
        self.platform, _ = Platform.objects.get_or_create(code="wzxd", defaults={"name": "问政西地省"})
        self._n = 0

    def register(self, **fields) -> Case:
        """Register a new message (defaults: a consultation submitted 2026-03-02 09:00 Beijing)."""
        self._n += 1
        data = {
            "platform": self.platform,
            "subject": f"关于户口迁移的咨询 {self._n}",
            "body": "请问户口从外省迁入需要哪些材料?",
            "submitted_at": datetime(2026, 3, 2, 9, 0, tzinfo=SHANGHAI),
            "external_id": f"T{self._n:05d}",
        }
        data.update(fields)
        return services.case_register(acting_user=self.dispatcher, **data)

    def case_in(self, state: str, *, unit: Unit | None = None, report: str = "已核实",
                reply: str = "您好,所需材料如下。", where: str = "问政西地省", **fields) -> Case:
        """Return a case walked through the services up to ``state``, lead unit ``unit`` (default A).

        ``report`` and ``reply`` are the unit's feedback and draft reply; ``where`` where it is published.
        """
        unit = unit or self.unit_a
        handler = self.handler_a if unit == self.unit_a else self.handler_b
        case = self.register(**fields)
        if state == State.REGISTERED:
            return case
        if state == State.ARCHIVED:
            return services.case_reject_invalid(case=case, acting_user=self.dispatcher, reason="重复留言")
        case = services.case_dispatch(case=case, acting_user=self.dispatcher, unit=unit)
        if state == State.DISPATCHED:
            return case
        case = services.case_accept(case=case, acting_user=handler)
        if state == State.HANDLING:
            return case
        services.draft_save(case=case, acting_user=handler, handling_report=report, reply_text=reply)
        case = services.case_submit_feedback(case=case, acting_user=handler)
        if state == State.OFFICE_REVIEW:
            return case
        case = services.case_office_approve(case=case, acting_user=self.reviewer)
        if state == State.LEADER_REVIEW:
            return case
        case = services.case_leader_approve(case=case, acting_user=self.leader)
        if state == State.APPROVED:
            return case
        case = services.case_publish_reply(case=case, acting_user=self.dispatcher, where=where)
        if state == State.REPLIED:
            return case
        raise ValueError(state)


def run_together(*calls):
    """Run ``calls`` in threads released by one barrier, each on its own database connection."""
    barrier = threading.Barrier(len(calls))
    results = [None] * len(calls)

    def runner(i, call):
        try:
            barrier.wait(timeout=10)
            results[i] = ("ok", call())
        except Exception as exc:  # the outcome is what the test asserts
            results[i] = ("error", exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=runner, args=(i, c)) for i, c in enumerate(calls)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    return results
