"""Topics and the dashboard's hot topics within the reader's scope, per role (issue 9 §1).

A topic mixing unit A's and unit B's messages: a unit-A handler or a unit-A leader sees it only
through A's cases, with counts, likes and heat computed on them and a title taken from them; a
topic of B's messages only does not exist for them. The city-wide office and leaders see every
topic with its stored title and figures.
"""

from datetime import datetime
import html
from zoneinfo import ZoneInfo

from django.urls import reverse
import pytest

from accounts import roles
from assessment.models import ImprovementAction, Topic, TopicMembership
from assessment.selectors import dashboard_data
from assessment.topics import Message, heat_index
from tests.factories import make_user

SHANGHAI = ZoneInfo("Asia/Shanghai")
B_TITLE = "岳塘区丽发新城搅拌站夜间施工噪音扰民"
B_ONLY_TITLE = "岳塘区某小区物业乱收费"


@pytest.fixture
def world(bureau):
    b = bureau
    b.leader_a = make_user("leader_a", role=roles.LEADER, unit=b.unit_a)
    at = datetime(2026, 3, 2, 9, 0, tzinfo=SHANGHAI)
    a1 = b.case_in("dispatched", unit=b.unit_a, subject="雨湖区工地夜间施工噪音", likes=3, citizen_name="甲",
                   submitted_at=at)
    a2 = b.case_in("dispatched", unit=b.unit_a, subject="雨湖区工地噪音影响休息", likes=1, citizen_name="乙",
                   submitted_at=at)
    bs = [b.case_in("dispatched", unit=b.unit_b, subject=f"{B_TITLE}{i}", likes=500, citizen_name=f"丙{i}",
                    submitted_at=at) for i in range(3)]
    mixed = Topic.objects.create(title=B_TITLE, keywords="搅拌站 丽发 新城", heat=99.0, message_count=5,
                                 citizen_count=5, likes=1504)
    for case, sim in ((a1, 0.4), (a2, 0.6), (bs[0], 0.9), (bs[1], 0.8), (bs[2], 0.7)):
        TopicMembership.objects.create(topic=mixed, case=case, similarity=sim)
    b_only = Topic.objects.create(title=B_ONLY_TITLE, keywords="物业 收费", heat=50.0, message_count=2)
    for case in bs[:0] or [b.case_in("dispatched", unit=b.unit_b, subject=B_ONLY_TITLE + str(i)) for i in range(2)]:
        TopicMembership.objects.create(topic=b_only, case=case, similarity=0.5)
    ImprovementAction.objects.create(topic=b_only, unit=b.unit_b, description="整改物业收费", due_date=at.date(),
                                     started_on=at.date(), assigned_by=b.dispatcher)
    b.a_cases, b.b_cases, b.mixed, b.b_only = [a1, a2], bs, mixed, b_only
    return b


def expected_heat(cases):
    return heat_index([Message(id=c.pk, subject=c.subject, submitted_at=c.submitted_at, citizen=c.citizen_name,
                               likes=c.likes or 0, dislikes=c.dislikes or 0) for c in cases])


@pytest.mark.parametrize("role", ["handler_a", "leader_a"])
def test_dashboard_hot_topics_of_a_unit_reader_come_from_his_cases_only(world, role):
    hot = dashboard_data(user=getattr(world, role))["hot_topics"]
    assert [t["id"] for t in hot] == [world.mixed.pk]
    topic = hot[0]
    assert topic["title"] == "雨湖区工地噪音影响休息"  # the most central of his own cases
    assert topic["count"] == 2
    assert topic["heat"] == round(expected_heat(world.a_cases), 1)
    assert topic["heat"] < 99.0


def test_dashboard_hot_topics_of_the_other_unit(world):
    hot = dashboard_data(user=world.handler_b)["hot_topics"]
    assert {t["id"] for t in hot} == {world.mixed.pk, world.b_only.pk}
    mixed = next(t for t in hot if t["id"] == world.mixed.pk)
    assert mixed["count"] == 3 and mixed["title"] == f"{B_TITLE}0"
    assert mixed["heat"] == round(expected_heat(world.b_cases), 1)


@pytest.mark.parametrize("role", ["dispatcher", "reviewer", "leader"])
def test_city_wide_readers_see_every_topic_with_its_stored_figures(world, role):
    hot = dashboard_data(user=getattr(world, role))["hot_topics"]
    assert [(t["id"], t["title"], t["heat"], t["count"]) for t in hot] == [
        (world.mixed.pk, B_TITLE, 99.0, 5), (world.b_only.pk, B_ONLY_TITLE, 50.0, 2)]


def get(client, user, url, **params):
    client.force_login(user)
    response = client.get(url, params)
    return response, html.unescape(response.content.decode())


def test_a_unit_leader_lists_topics_through_his_cases_with_his_figures(client, world):
    changelist = reverse("admin:assessment_topic_changelist")
    response, content = get(client, world.leader_a, changelist)
    assert response.status_code == 200
    assert list(response.context["cl"].result_list) == [world.mixed]
    assert B_TITLE not in content and B_ONLY_TITLE not in content
    assert "雨湖区工地噪音影响休息" in content
    assert f"{expected_heat(world.a_cases):.1f}" in content and "99.0" not in content
    for o in ("1", "-2", "3", "4", "5", "7", "2.3.4"):  # every sortable column
        response, content = get(client, world.leader_a, changelist, o=o)
        assert response.status_code == 200 and list(response.context["cl"].result_list) == [world.mixed]
        assert B_TITLE not in content
    # The search reads his visible subjects, never the stored titles or keywords.
    assert list(get(client, world.leader_a, changelist, q="搅拌站")[0].context["cl"].result_list) == []
    assert list(get(client, world.leader_a, changelist, q="雨湖区")[0].context["cl"].result_list) == [world.mixed]


def test_a_unit_leader_reads_a_mixed_topic_page_without_the_other_units_title(client, world):
    for url in (reverse("admin:assessment_topic_change", args=[world.mixed.pk]),
                reverse("admin:assessment_topic_history", args=[world.mixed.pk])):
        response, content = get(client, world.leader_a, url)
        assert response.status_code == 200, url
        assert B_TITLE not in content and "搅拌站" not in content, url
        assert "雨湖区工地噪音影响休息" in content
    response, content = get(client, world.leader_a, reverse("admin:assessment_topic_change", args=[world.mixed.pk]))
    assert "1504" not in content  # the other unit's likes
    response, _content = get(client, world.leader_a, reverse("admin:assessment_topic_change", args=[world.b_only.pk]))
    assert response.status_code in (302, 404)  # a topic of B's messages does not exist for him


def test_a_unit_leader_sees_no_improvement_action_of_a_topic_outside_his_scope(client, world):
    response, content = get(client, world.leader_a, reverse("admin:assessment_improvementaction_changelist"))
    assert response.status_code == 200
    assert list(response.context["cl"].result_list) == []
    assert B_ONLY_TITLE not in content
    response, content = get(client, world.leader, reverse("admin:assessment_improvementaction_changelist"))
    assert B_ONLY_TITLE in content


def test_the_city_wide_office_keeps_the_stored_title_and_may_edit_it(client, world):
    response, content = get(client, world.dispatcher, reverse("admin:assessment_topic_change", args=[world.mixed.pk]))
    assert response.status_code == 200
    assert f'value="{B_TITLE}"' in content  # the editable title field
    response, content = get(client, world.reviewer, reverse("admin:assessment_topic_changelist"))
    assert B_TITLE in content and B_ONLY_TITLE in content and "99.0" in content
