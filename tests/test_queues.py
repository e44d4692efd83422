"""Work queues per role on the admin index ("my work", DESIGN.md §1): counts equal what the user can open."""

from datetime import datetime, timedelta
import re
from zoneinfo import ZoneInfo

from django.urls import reverse
import pytest

from casework import calendar, joint, selectors, services
from casework.models import State

CHANGELIST = "admin:casework_case_changelist"


@pytest.fixture
def work(bureau):
    """Cases spread over every queue, for units A and B."""
    cases = {
        "registered": bureau.case_in(State.REGISTERED),
        "a_dispatched": bureau.case_in(State.DISPATCHED),
        "b_dispatched": bureau.case_in(State.DISPATCHED, unit=bureau.unit_b),
        "a_handling": bureau.case_in(State.HANDLING),
        "a_office": bureau.case_in(State.OFFICE_REVIEW),
        "a_leader": bureau.case_in(State.LEADER_REVIEW),
        "a_approved": bureau.case_in(State.APPROVED),
        "a_replied": bureau.case_in(State.REPLIED),
    }
    sent_back = bureau.case_in(State.OFFICE_REVIEW)
    cases["a_sent_back"] = services.case_office_send_back(case=sent_back, acting_user=bureau.reviewer, reason="补充依据")
    returned = bureau.case_in(State.DISPATCHED, unit=bureau.unit_b)
    cases["returned"] = services.case_return_to_office(case=returned, acting_user=bureau.handler_b, reason="非本辖区")
    joint.co_unit_assign(case=cases["a_handling"], acting_user=bureau.dispatcher, unit=bureau.unit_b,
                         task="协查", working_days=2)
    joint.extension_request(case=cases["a_handling"], acting_user=bureau.handler_a, reason="材料多", working_days=2)
    joint.case_mark_key(case=cases["a_leader"], acting_user=bureau.dispatcher, leader=bureau.leader)
    return cases


EXPECTED = {
    "handler_a": {"sign_for": {"a_dispatched"}, "handling": {"a_handling"}, "sent_back": {"a_sent_back"},
                  "co_unit": set()},
    "handler_b": {"sign_for": {"b_dispatched"}, "handling": set(), "sent_back": set(), "co_unit": {"a_handling"}},
    "dispatcher": {"to_dispatch": {"registered"}, "returned": {"returned"}, "extension": {"a_handling"},
                   "to_publish": {"a_approved"}, "follow_up": {"a_replied"}},
    "reviewer": {"office_review": {"a_office"}},
    "leader": {"leader_review": {"a_leader"}, "key_cases": {"a_leader"}},
    "supervisor": {"referrals_open": set(), "referrals_done": set()},
}


@pytest.mark.parametrize("role", list(EXPECTED))
def test_each_role_sees_its_own_queues_with_exactly_its_cases(bureau, work, role):
    user = getattr(bureau, role)
    got = {spec.key: {k for k, c in work.items() if c.pk in {x.pk for x in selectors.case_queue(user=user, key=spec.key)}}
           for spec in selectors.queues_for_user(user=user)}
    assert got == EXPECTED[role]


@pytest.mark.parametrize("role", list(EXPECTED))
def test_queue_counts_on_the_index_equal_the_cases_the_user_can_open(client, bureau, work, role):
    user = getattr(bureau, role)
    client.force_login(user)
    index = client.get(reverse("admin:index")).content.decode()

    shown = dict(re.findall(r'id="cw-queue-([a-z_]+)".*?data-count="(\d+)"', index, flags=re.S))
    assert set(shown) == set(EXPECTED[role])
    for key, count in shown.items():
        listed = client.get(reverse(CHANGELIST), {"queue": key}).context["cl"].result_list
        assert int(count) == len(listed)
        for case in listed:
            assert client.get(reverse("admin:casework_case_change", args=[case.pk])).status_code == 200
    assert "admin/dashboard_panel.html" not in index  # the panel is included, not printed


def test_queue_lists_what_is_due_first_with_the_working_time_left(client, bureau):
    later = bureau.case_in(State.HANDLING)
    sooner = bureau.case_in(State.HANDLING)
    ext = joint.extension_request(case=later, acting_user=bureau.handler_a, reason="材料多", working_days=3)
    joint.extension_decide(extension=ext, acting_user=bureau.dispatcher, approve=True)
    client.force_login(bureau.handler_a)

    response = client.get(reverse(CHANGELIST), {"queue": "handling"})

    assert [c.pk for c in response.context["cl"].result_list] == [sooner.pk, later.pk]
    assert "剩 " in response.content.decode() and "个工作日" in response.content.decode()


def test_working_time_left_counts_working_days_and_overdue(bureau):
    # Wednesday 2026-03-04 10:00 Beijing: "today" must not depend on when the suite runs.
    now = datetime(2026, 3, 4, 10, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
    assert selectors.working_time_left(due=None) == ""
    assert selectors.working_time_left(due=now + timedelta(minutes=5), now=now).startswith("今日")
    assert selectors.working_time_left(due=now + timedelta(hours=15), now=now).startswith("剩 1 个工作日")
    due = now - timedelta(days=14)
    assert selectors.working_time_left(due=due, now=now) == f"已超期 {calendar.working_days_between(due, now)} 个工作日"
    ahead = now + timedelta(days=14)
    assert selectors.working_time_left(due=ahead, now=now) == f"剩 {calendar.working_days_between(now, ahead)} 个工作日"


def test_queue_counts_cost_one_query_each(bureau, work, django_assert_max_num_queries):
    with django_assert_max_num_queries(len(selectors.queues_for_user(user=bureau.dispatcher)) + 4):
        selectors.queue_counts(user=bureau.dispatcher)
