"""类案参考 (issue 12, item 3) and 未诉先办 topic alerts (item 4).

Similar replies: the handler's drafting screen offers only archived cases inside the handler's
scope, with personal numbers masked. Topic alerts: one alert per rise, none on a flat series,
through the Celery task the beat schedule runs.
"""

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from django.urls import reverse
from django_celery_beat.models import PeriodicTask
import pytest

from assessment import alerts
from assessment import selectors as assessment_selectors
from assessment.models import Topic, TopicAlert, TopicAlertRule, TopicMembership
from assessment.tasks import topic_alerts_scan
from casework import services
from casework.defaults import ROUTER_TRAIN_TASK_NAME, TOPIC_ALERT_TASK_NAME
from casework.models import Case, Notification, State
from casework.similar import similar_replies
from casework.tasks import router_train
from config.celery import app as celery_app

SHANGHAI = ZoneInfo("Asia/Shanghai")

LIGHT = ("小区门口路灯坏了没人修", "A3区枫林路小区门口路灯坏了三个月，晚上很黑，请尽快维修。")


def replied(bureau, unit, subject, body, reply, **fields):
    """A case walked to 已回复 with its own published reply text."""
    handler = bureau.handler_a if unit == bureau.unit_a else bureau.handler_b
    case = bureau.case_in(State.HANDLING, unit=unit, subject=subject, body=body, **fields)
    services.draft_save(case=case, acting_user=handler, handling_report="已核实", reply_text=reply)
    services.case_submit_feedback(case=case, acting_user=handler)
    services.case_office_approve(case=case, acting_user=bureau.reviewer)
    services.case_leader_approve(case=case, acting_user=bureau.leader)
    return services.case_publish_reply(case=case, acting_user=bureau.dispatcher, where="问政西地省")


@pytest.mark.django_db
def test_similar_replies_stay_in_scope_and_mask_personal_numbers(bureau, client):
    own = replied(bureau, bureau.unit_a, "枫林路路灯坏了 电话13900001111", "A3区枫林路小区门口路灯坏了，晚上很黑。",
                  "您好,路灯已于3月5日修复。", citizen_name="UU42")
    # Replies carried over from the old system were never checked for numbers (publishing refuses them now).
    Case.objects.filter(pk=own.pk).update(published_reply=(
        "UU42您好,路灯已于3月5日修复。如有问题请联系13812345678或0731-84567890,"
        "身份证号430102199001011234的网民请来所里。"))
    replied(bureau, bureau.unit_a, "咨询新生儿落户", "新生儿落户需要哪些材料?", "您好,请携带出生医学证明办理。")
    foreign = replied(bureau, bureau.unit_b, LIGHT[0], LIGHT[1], "岳塘分局答复:已修复。")  # the most similar text
    drafting = bureau.case_in(State.HANDLING, unit=bureau.unit_a, subject=LIGHT[0], body=LIGHT[1])

    offered = similar_replies(user=bureau.handler_a, case=drafting)
    assert [o["pk"] for o in offered][0] == own.pk
    assert foreign.pk not in [o["pk"] for o in offered] and drafting.pk not in [o["pk"] for o in offered]
    assert len(offered) <= 5
    reply = offered[0]["reply"]
    assert "13812345678" not in reply and "138****5678" in reply
    assert "84567890" not in reply and "430102199001011234" not in reply and "UU42" not in reply
    assert "13900001111" not in offered[0]["subject"]
    # The city-wide dispatcher sees both units' cases, so the other unit's case is offered to them.
    assert foreign.pk in [o["pk"] for o in similar_replies(user=bureau.dispatcher, case=drafting)]

    client.force_login(bureau.handler_a)
    page = client.get(reverse("admin:casework_case_change", args=[drafting.pk])).content.decode()
    assert 'id="cw-similar"' in page and own.reference in page and "138****5678" in page
    assert foreign.reference not in page and "13812345678" not in page and "岳塘分局答复" not in page
    assert "cw-insert-reply" in page and "similar_replies.js" in page


def test_rule_alerts_once_per_rise_and_never_on_a_flat_series():
    flat = [3] * 30
    assert alerts.rises(flat) == []
    series = [1] * 10 + [9, 12, 10] + [1] * 10 + [8] + [0] * 3
    found = alerts.rises(series, baseline_weeks=8, ratio=3.0, min_count=5)
    assert [(r.start, r.end) for r in found] == [(10, 13), (23, 24)]
    assert found[0].baseline == 1.0 and found[0].count == 9


@pytest.fixture
def topics(bureau):
    """Two topics over 12 weeks: one flat (2 a week), one flat (1 a week) that rises in weeks 10–11."""
    monday = datetime(2026, 1, 5, 10, 0, tzinfo=SHANGHAI)
    flat = Topic.objects.create(title="物业收费", status=Topic.Status.CONFIRMED)
    rising = Topic.objects.create(title="天然气开户费", status=Topic.Status.CONFIRMED)

    def add(topic, week, n):
        for i in range(n):
            case = bureau.register(subject=f"{topic.title} 第{week}周 {i}", body=f"{topic.title}问题 {week}-{i}",
                                   submitted_at=monday + timedelta(weeks=week, hours=i))
            TopicMembership.objects.create(topic=topic, case=case, similarity=1)

    for week in range(12):
        add(flat, week, 2)
        add(rising, week, 6 if week in (10, 11) else 1)
    return {"monday": monday, "flat": flat, "rising": rising, "add": add}


@pytest.mark.django_db
def test_scan_task_sends_one_alert_per_rise_to_office_and_leaders(topics, bureau, eager_celery,
                                                                  django_capture_on_commit_callbacks):
    TopicAlertRule.objects.create(baseline_weeks=8, ratio=3.0, min_count=5, lookback_weeks=2)
    # The task the beat entry names (created by defaults_ensure after migrate) is the one run here.
    entry = PeriodicTask.objects.get(name=TOPIC_ALERT_TASK_NAME)
    assert entry.enabled and entry.crontab.timezone.key == "Asia/Shanghai"
    scan = celery_app.tasks[entry.task]
    assert scan.name == topic_alerts_scan.name == "assessment.topic_alerts_scan"
    week = lambda n: (topics["monday"] + timedelta(weeks=n, days=5)).isoformat()  # noqa: E731  (Saturday)

    assert scan.delay(now=week(9)).get() == {"alerts": 0}  # flat so far
    with django_capture_on_commit_callbacks(execute=True):  # the e-mail goes after commit
        assert scan.delay(now=week(10)).get() == {"alerts": 1}
    assert scan.delay(now=week(10)).get() == {"alerts": 0}  # the same rise: no second alert
    assert scan.delay(now=week(11)).get() == {"alerts": 0}  # still the same rise
    alert = TopicAlert.objects.get()
    assert (alert.topic, alert.count, alert.ended_week) == (topics["rising"], 6, None)
    assert not TopicAlert.objects.filter(topic=topics["flat"]).exists()

    mails = Notification.objects.filter(key__startswith="topic-alert:")
    assert mails.count() == 1 and mails[0].sent_at is not None
    assert {bureau.dispatcher.email, bureau.reviewer.email, bureau.leader.email} <= set(mails[0].recipients)
    assert "天然气开户费" in mails[0].subject

    data = assessment_selectors.dashboard_data(user=bureau.leader, now=topics["monday"] + timedelta(weeks=11, days=5))
    assert [a["id"] for a in data["topic_alerts"]] == [topics["rising"].pk]

    # The rise ends in week 12 (back to 1); a new rise in week 13 alerts again, once.
    topics["add"](topics["rising"], 12, 1)
    assert scan.delay(now=week(12)).get() == {"alerts": 0}
    alert.refresh_from_db()
    assert alert.ended_week is not None
    topics["add"](topics["rising"], 13, 12)
    assert scan.delay(now=week(13)).get() == {"alerts": 1}
    assert scan.delay(now=week(13)).get() == {"alerts": 0}
    assert Notification.objects.filter(key__startswith="topic-alert:").count() == 2


@pytest.mark.django_db
def test_rule_parameters_are_for_superusers_only(bureau, django_user_model):
    from django.core.exceptions import PermissionDenied, ValidationError

    with pytest.raises(PermissionDenied):
        alerts.alert_rule_set(acting_user=bureau.dispatcher, rule=TopicAlertRule(ratio=2))
    admin = django_user_model.objects.create_superuser("root", "root@bureau.invalid", "pw")
    with pytest.raises(ValidationError):
        alerts.alert_rule_set(acting_user=admin, rule=TopicAlertRule(ratio=0.5))
    alerts.alert_rule_set(acting_user=admin, rule=TopicAlertRule(ratio=2.5, min_count=4))
    assert alerts.alert_rule_current().ratio == 2.5


@pytest.mark.django_db
def test_weekly_training_is_scheduled_by_beat():
    entry = PeriodicTask.objects.get(name=ROUTER_TRAIN_TASK_NAME)
    assert entry.enabled and entry.crontab.day_of_week == "0" and entry.crontab.hour == "2"
    assert celery_app.tasks[entry.task].name == router_train.name == "casework.router_train"
