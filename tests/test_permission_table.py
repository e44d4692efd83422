"""One permission rule per page, tested per role: every admin page of every registered model, every
custom admin URL and every assessment page, for each demo role, answers the expected status.

The rules are written here as a table (and next to each page in the code). A model registered in
the admin, or a custom admin URL, that the table does not name fails the test: a new page needs
its rule decided. No page may answer 500.
"""

from datetime import date, datetime
from zoneinfo import ZoneInfo

from axes.models import AccessAttempt, AccessFailureLog, AccessLog
from django.contrib import admin
from django.contrib.auth.models import Group
from django.urls import reverse
from django_celery_beat.models import (
    ClockedSchedule,
    CrontabSchedule,
    IntervalSchedule,
    PeriodicTask,
    SolarSchedule,
)
import pytest

from assessment.alert_models import TopicAlert, TopicAlertRule
from assessment.models import AssessmentWeights, ImprovementAction, KnowledgeArticle, Topic, TopicMembership
from casework import attachments, joint
from casework.importing_models import ImportJob
from casework.learning_models import RouterModel
from casework.models import (
    Attachment,
    AuditVerificationRun,
    CalendarYear,
    DeadlinePolicy,
    DisciplineReferral,
    EscalationRung,
    EscalationStep,
    Notification,
    QualityRung,
    QualityStep,
    RectificationRound,
    State,
    SupervisionNotice,
    UnitCalendarDay,
    WorkCalendarDay,
)

SH = ZoneInfo("Asia/Shanghai")
ROLES = ["none", "handler", "dispatcher", "office_reviewer", "leader", "supervisor", "superuser"]
SU = {"superuser"}
NOBODY: set[str] = set()
CASE_READERS = set(ROLES) - {"none"}
OFFICE = {"dispatcher", "office_reviewer", "superuser"}
TOPIC_READERS = OFFICE | {"leader"}

# model label: (who reads list/page/history, who opens the add form, who opens the delete page)
MODEL_RULES = {
    "accounts.User": (SU, SU, SU),
    "accounts.Unit": (SU, SU, SU),  # e-mails and history of units: superusers only
    "auth.Group": (SU, SU, SU),
    "axes.AccessAttempt": (SU, NOBODY, SU),  # a superuser unlocks by deleting the attempt
    "axes.AccessLog": (SU, NOBODY, SU),
    "axes.AccessFailureLog": (SU, NOBODY, SU),
    "casework.Case": (CASE_READERS, {"dispatcher", "superuser"}, NOBODY),
    "casework.ReplyDraft": (SU, NOBODY, NOBODY),
    "casework.CoUnitTask": (SU, NOBODY, NOBODY),
    "casework.Extension": ({"handler", "dispatcher", "superuser"}, NOBODY, NOBODY),
    "casework.CaseEvent": (SU, NOBODY, NOBODY),
    "casework.SupervisionNotice": (CASE_READERS, NOBODY, NOBODY),
    "casework.DisciplineReferral": ({"dispatcher", "office_reviewer", "leader", "supervisor", "superuser"},
                                    NOBODY, NOBODY),  # issue 13: the office refers for poor handling
    "casework.PoorHandlingReason": (SU, SU, SU),  # issue 13: the configurable list of 办理不力 reasons
    "casework.QualityRung": (SU, SU, NOBODY),  # quality rungs: deactivated, never deleted
    "casework.QualityStep": ({"dispatcher", "office_reviewer", "leader", "superuser"}, NOBODY, NOBODY),
    "casework.CaseClock": (SU, NOBODY, NOBODY),
    "casework.EscalationStep": (SU, NOBODY, NOBODY),
    "casework.Platform": (SU, SU, SU),
    "casework.WorkCalendarDay": (SU, SU, SU),
    "casework.CalendarYear": (SU, SU, SU),
    "casework.UnitCalendarDay": (SU, SU, SU),
    "casework.DeadlinePolicy": (SU, SU, SU),
    "casework.EscalationRung": (SU, SU, NOBODY),  # rungs are deactivated, never deleted
    "casework.Notification": (SU, NOBODY, NOBODY),  # the outbox is the record of what was sent
    "django_celery_beat.PeriodicTask": (SU, SU, SU),
    "django_celery_beat.ClockedSchedule": (SU, SU, SU),
    "django_celery_beat.CrontabSchedule": (SU, SU, SU),
    "django_celery_beat.SolarSchedule": (SU, SU, SU),
    "django_celery_beat.IntervalSchedule": (SU, SU, SU),
    "assessment.AssessmentWeights": (SU, SU, NOBODY),
    "assessment.Topic": (TOPIC_READERS, OFFICE, SU),
    "assessment.KnowledgeArticle": (CASE_READERS, OFFICE, SU),
    "assessment.ImprovementAction": (TOPIC_READERS, OFFICE, SU),
    "assessment.TopicAlert": (TOPIC_READERS, NOBODY, NOBODY),  # raised by the scan, never edited
    "assessment.TopicAlertRule": (SU, SU, NOBODY),  # the rule's parameters: superusers
    "casework.PublishedReply": (SU, NOBODY, NOBODY),  # immutable; read on the case page
    "casework.AuditVerificationRun": (SU, NOBODY, NOBODY),
    "casework.ImportJob": ({"dispatcher", "superuser"}, NOBODY, NOBODY),  # those who import
    "casework.RouterModel": (SU, NOBODY, NOBODY),  # models are deactivated, not deleted
    # 跟踪督办: the referred unit's handlers (who answer) and whoever reads the referral
    "casework.RectificationRound": ({"handler", "dispatcher", "leader", "supervisor", "superuser"}, NOBODY, NOBODY),
}


def status_for(roles_allowed: set[str], role: str) -> int:
    return 200 if role in roles_allowed else 403


@pytest.fixture
def world(bureau, django_user_model):
    """One object of every registered model, inside unit A's scope where it belongs to a case."""
    root = django_user_model.objects.create_superuser("root", "root@bureau.invalid", "pw")
    users = {
        "none": bureau.head_a, "handler": bureau.handler_a, "dispatcher": bureau.dispatcher,
        "office_reviewer": bureau.reviewer, "leader": bureau.leader, "supervisor": bureau.supervisor,
        "superuser": root,
    }
    case = bureau.case_in(State.REPLIED)
    dispatched = bureau.case_in(State.DISPATCHED)
    joint.co_unit_assign(case=dispatched, acting_user=bureau.dispatcher, unit=bureau.unit_b, task="协查",
                         working_days=3)
    joint.extension_request(case=dispatched, acting_user=bureau.handler_a, clock="reply", working_days=3,
                            reason="需要协调")
    at = datetime(2026, 3, 10, 9, 0, tzinfo=SH)
    SupervisionNotice.objects.create(case=case, unit=bureau.unit_a, content="请立即办理", opened_at=at)
    QualityStep.objects.create(rung=QualityRung.objects.order_by("pk").first(), case=case, round=1,
                               unit=bureau.unit_a, count=1, happened_at=at, status="proposed")
    referral = DisciplineReferral.objects.create(case=case, unit=bureau.unit_a, reason="超期", created_at=at)
    RectificationRound.objects.create(referral=referral, number=1, requirement="请报送整改报告", working_days=3,
                                      due_at=at, set_by=bureau.supervisor, set_at=at)
    EscalationStep.objects.create(case=case, clock="reply", round=1, level=EscalationRung.objects.first().level,
                                  due_at=at, happened_at=at)
    Notification.objects.create(key="perm-table", subject="测试", body="正文", recipients=["a@bureau.invalid"])
    WorkCalendarDay.objects.get_or_create(date=date(2026, 10, 1), defaults={"is_workday": False, "note": "国庆"})
    CalendarYear.objects.get_or_create(year=2026)
    UnitCalendarDay.objects.create(unit=bureau.unit_a, date=date(2026, 5, 6), is_workday=False, note="调休")
    AssessmentWeights.objects.create(updated_by=root)
    article = KnowledgeArticle.objects.create(title="户口迁移", body="所需材料……", keywords="户口")
    topic = Topic.objects.create(title="户口迁移咨询", article=article)
    TopicMembership.objects.create(topic=topic, case=case, similarity=0.9)
    ImprovementAction.objects.create(topic=topic, unit=bureau.unit_a, description="公布材料清单",
                                     due_date=date(2026, 6, 1), started_on=date(2026, 4, 1),
                                     assigned_by=bureau.dispatcher)
    interval = IntervalSchedule.objects.create(every=10, period=IntervalSchedule.MINUTES)
    PeriodicTask.objects.create(name="perm-table", task="casework.tasks.escalation_sweep_task", interval=interval)
    ClockedSchedule.objects.create(clocked_time=at)
    CrontabSchedule.objects.create(minute="0", hour="9")
    SolarSchedule.objects.create(event="sunrise", latitude=28.2, longitude=112.9)
    Group.objects.get_or_create(name="perm-table")
    TopicAlertRule.objects.create()
    TopicAlert.objects.create(topic=topic, week_start=date(2026, 3, 2), count=9, baseline=1.0)
    AuditVerificationRun.objects.create(started_at=at)
    ImportJob.objects.create(platform=bureau.platform, file_name="a.csv", created_by=bureau.dispatcher)
    RouterModel.objects.create(trained_at=at, n_cases=40, n_units=2, size_bytes=1, blob=b"x", is_active=False)
    # bulk_create: no post_save signal, which django-axes' cache handler (REDIS_URL set) does not take.
    AccessAttempt.objects.bulk_create([AccessAttempt(
        username="x", ip_address="203.0.113.1", user_agent="t", failures_since_start=1, get_data="",
        post_data="", http_accept="", path_info="/")])
    AccessLog.objects.bulk_create([AccessLog(username="x", ip_address="203.0.113.1", user_agent="t",
                                             http_accept="", path_info="/")])
    AccessFailureLog.objects.bulk_create([AccessFailureLog(
        username="x", ip_address="203.0.113.1", user_agent="t", http_accept="", path_info="/", locked_out=False)])
    assert DeadlinePolicy.objects.exists() and EscalationRung.objects.exists()
    stored = attachments.storage_dir() / "perm-table.png"
    stored.write_bytes(b"\x89PNG\r\n\x1a\n")
    attachment = Attachment.objects.create(case=case, original_name="p.png", stored_name="perm-table.png",
                                           content_type="image/png", size=8, sha256="0" * 64,
                                           uploaded_by=bureau.handler_a, uploaded_at=at)
    return {"users": users, "case": case, "dispatched": dispatched, "topic": topic, "attachment": attachment}


def an_object_in_scope(model, world):
    """An object of ``model`` the city-wide roles and unit A's handler can see (unit A's cases)."""
    qs = model._default_manager.all()
    if hasattr(model, "case"):
        qs = qs.filter(case__lead_unit=world["case"].lead_unit)
    return qs.order_by("pk").first()


def test_the_table_names_every_registered_model():
    registered = {m._meta.label for m in admin.site._registry}
    assert registered == set(MODEL_RULES), (registered - set(MODEL_RULES), set(MODEL_RULES) - registered)


@pytest.mark.parametrize("role", ROLES)
def test_every_admin_page_of_every_model_answers_the_roles_rule(client, world, role):
    client.force_login(world["users"][role])
    wrong = []
    for model in admin.site._registry:
        readers, adders, deleters = MODEL_RULES[model._meta.label]
        info = (model._meta.app_label, model._meta.model_name)
        obj = an_object_in_scope(model, world)
        assert obj is not None, f"no {model._meta.label} to test with"
        pages = [
            ("changelist", reverse("admin:%s_%s_changelist" % info), status_for(readers, role)),
            ("add", reverse("admin:%s_%s_add" % info), status_for(adders, role)),
            ("change", reverse("admin:%s_%s_change" % info, args=[obj.pk]), status_for(readers, role)),
            ("history", reverse("admin:%s_%s_history" % info, args=[obj.pk]), status_for(readers, role)),
            ("delete", reverse("admin:%s_%s_delete" % info, args=[obj.pk]), status_for(deleters, role)),
        ]
        for name, url, expected in pages:
            status = client.get(url).status_code
            if status != expected:
                wrong.append((model._meta.label, name, status, expected))
    assert wrong == []


# Custom admin URLs (by URL name): who gets 200 on GET (others 403); None = a POST-only endpoint
# that answers GET with 403/405 for everybody.
CUSTOM_RULES = {
    "casework_case_act": ("post-only", 405),
    "casework_case_import": ({"dispatcher", "superuser"}, None),
    "casework_attachment_download": (CASE_READERS, None),
    "casework_supervisionnotice_answer": (CASE_READERS, None),
    "casework_disciplinereferral_outcome": ({"supervisor", "superuser"}, None),
    "casework_disciplinereferral_rectify": ({"supervisor", "superuser"}, None),
    "casework_disciplinereferral_print": ({"dispatcher", "office_reviewer", "leader", "supervisor", "superuser"}, None),
    "casework_disciplinereferral_pdf": ({"dispatcher", "office_reviewer", "leader", "supervisor", "superuser"}, None),
    "casework_supervisionnotice_print": (CASE_READERS, None),
    "casework_supervisionnotice_pdf": (CASE_READERS, None),
    # GET: the answer form for the unit, the reason why not for the other readers (never a bare 403)
    "casework_rectificationround_answer": ({"handler", "dispatcher", "leader", "supervisor", "superuser"}, None),
    "assessment_topic_split": ("post-only", 403),
    "assessment_topic_assign": ("post-only", 403),
}
STANDARD = {"changelist", "add", "change", "history", "delete", "autocomplete"}


def custom_url_names():
    names = set()
    for model_admin in admin.site._registry.values():
        for pattern in model_admin.get_urls():
            name = getattr(pattern, "name", None)
            if name and not any(name.endswith(f"_{s}") for s in STANDARD):
                names.add(name)
    return names


def test_the_table_names_every_custom_admin_url():
    assert custom_url_names() == set(CUSTOM_RULES)


def custom_url(name, world):
    case, dispatched = world["case"], world["dispatched"]
    args = {
        "casework_case_act": [dispatched.pk, "accept"],
        "casework_case_import": [],
        "casework_attachment_download": [world["attachment"].pk],
        "casework_supervisionnotice_answer": [SupervisionNotice.objects.get(case=case).pk],
        "casework_disciplinereferral_outcome": [DisciplineReferral.objects.get(case=case).pk],
        "casework_disciplinereferral_rectify": [DisciplineReferral.objects.get(case=case).pk],
        "casework_disciplinereferral_print": [DisciplineReferral.objects.get(case=case).pk],
        "casework_disciplinereferral_pdf": [DisciplineReferral.objects.get(case=case).pk],
        "casework_supervisionnotice_print": [SupervisionNotice.objects.get(case=case).pk],
        "casework_supervisionnotice_pdf": [SupervisionNotice.objects.get(case=case).pk],
        "casework_rectificationround_answer": [RectificationRound.objects.get(referral__case=case).pk],
        "assessment_topic_split": [world["topic"].pk],
        "assessment_topic_assign": [world["topic"].pk],
    }[name]
    return reverse(f"admin:{name}", args=args)


def assessment_pages(world):
    case = world["case"]
    return {
        "dashboard": reverse("assessment:dashboard"),
        "dashboard_data": reverse("assessment:dashboard_data"),
        "report": reverse("assessment:report") + "?year=2026",
        "report_cases": reverse("assessment:report_cases") + "?year=2026&metric=sign_for_on_time&part=den",
        "report_export": reverse("assessment:report_export") + "?year=2026",
        "articles_for_case": reverse("assessment:articles_for_case", args=[case.pk]),
    }


@pytest.mark.parametrize("role", ROLES)
def test_every_custom_admin_url_and_assessment_page_answers_the_roles_rule(client, world, role):
    client.force_login(world["users"][role])
    wrong = []
    for name, (allowed, post_only_status) in CUSTOM_RULES.items():
        expected = post_only_status if allowed == "post-only" else status_for(allowed, role)
        status = client.get(custom_url(name, world)).status_code
        if status != expected:
            wrong.append((name, status, expected))
    for name, url in assessment_pages(world).items():
        status = client.get(url).status_code
        if status != status_for(CASE_READERS, role):  # the rule of every assessment page
            wrong.append((name, status, status_for(CASE_READERS, role)))
    # Admin-wide pages: the index for every staff member; the unit autocomplete for dispatching roles.
    if client.get(reverse("admin:index")).status_code != 200:
        wrong.append(("index", "not 200"))
    autocomplete = client.get(reverse("admin:autocomplete"), {
        "app_label": "accounts", "model_name": "unitmembership", "field_name": "unit", "term": "分局"})
    if autocomplete.status_code != status_for({"dispatcher", "superuser"}, role):
        wrong.append(("autocomplete", autocomplete.status_code))
    elif autocomplete.status_code == 200:
        assert "@" not in autocomplete.content.decode()  # names only, never the units' e-mails
    assert wrong == []


def test_a_member_without_a_role_reads_no_case_subject_through_the_assessment_drill_down(client, world, bureau):
    client.force_login(bureau.head_a)  # member (head) of unit A, no role
    for url in assessment_pages(world).values():
        response = client.get(url)
        assert response.status_code == 403
        assert world["case"].subject not in response.content.decode()


@pytest.mark.parametrize("role", ["dispatcher", "office_reviewer"])
def test_the_office_reviews_topics_through_the_admin(client, world, role):
    topic = world["topic"]
    client.force_login(world["users"][role])
    url = reverse("admin:assessment_topic_change", args=[topic.pk])
    page = client.get(url)
    assert page.status_code == 200
    form = page.context["adminform"].form
    data = {k: v for k, v in form.initial.items() if v is not None and k in form.fields}
    data.update({"title": "户口迁移材料咨询", "status": Topic.Status.CONFIRMED, "is_common_issue": "on",
                 "article": topic.article_id})
    for prefix, formset in ((f.prefix, f) for f in page.context["inline_admin_formsets"]):
        mgmt = formset.formset.management_form
        data.update({f"{prefix}-{k}": v for k, v in mgmt.initial.items()})
        for i, f in enumerate(formset.formset.forms):
            data[f"{prefix}-{i}-id"] = f.instance.pk
            data[f"{prefix}-{i}-topic"] = topic.pk
    response = client.post(url, data)
    assert response.status_code == 302, response.content.decode()[:3000]
    topic.refresh_from_db()
    assert (topic.status, topic.is_common_issue, topic.title) == (Topic.Status.CONFIRMED, True, "户口迁移材料咨询")
    assert topic.reviewed_by == world["users"][role]


@pytest.mark.parametrize("role", ["leader", "handler", "none"])
def test_others_cannot_review_topics(client, world, role):
    topic = world["topic"]
    client.force_login(world["users"][role])
    response = client.post(reverse("admin:assessment_topic_change", args=[topic.pk]),
                           {"title": "改", "status": Topic.Status.DISMISSED})
    assert response.status_code == 403
    topic.refresh_from_db()
    assert topic.status == Topic.Status.SUGGESTED
