"""Issue 8 §2: no admin form or action silently overwrites what changed since the page was loaded.

Walks every registered admin (``admin.site._registry``): each change form, each action, each
list edit. For each: load the page as a superuser, change the row underneath as another admin
would (database write + admin log), submit what the page carried: refused (never a 500), the
row as the other admin left it, the refusal naming who, and the user's input still on the page.
Each also has a positive control: the same submit on an unchanged row goes through.
"""

from datetime import date, timedelta
from decimal import Decimal

from axes.models import AccessAttempt, AccessFailureLog, AccessLog
from django.contrib import admin
from django.contrib.auth.models import Group
from django.test import RequestFactory
from django.urls import reverse
from django.utils import timezone
from django_celery_beat.models import (
    ClockedSchedule,
    CrontabSchedule,
    IntervalSchedule,
    PeriodicTask,
    SolarSchedule,
)
import pytest

from accounts.models import User
from assessment.alert_models import TopicAlert, TopicAlertRule
from assessment.models import AssessmentWeights, ImprovementAction, KnowledgeArticle, Topic
from casework import joint
from casework.importing_models import ImportJob
from casework.learning_models import RouterModel
from casework.models import (
    AuditVerificationRun,
    CalendarYear,
    CaseClock,
    CaseEvent,
    DeadlinePolicy,
    DisciplineReferral,
    EscalationRung,
    EscalationStep,
    Notification,
    PoorHandlingReason,
    QualityRung,
    QualityStep,
    RectificationRound,
    State,
    SupervisionNotice,
    UnitCalendarDay,
    WorkCalendarDay,
)
from tests.factories import make_user
from tests.stale_helpers import change_underneath, read_form, row_values

REFUSED = "在您打开页面后已被"
NOT_ACTED = "未对其执行操作"


def _notice(bureau, superuser):
    case = bureau.case_in(State.HANDLING)
    return SupervisionNotice.objects.create(case=case, unit=bureau.unit_a, content="请按期办结",
                                            opened_by=superuser, opened_at=timezone.now())


def _referral(bureau, superuser):
    case = bureau.case_in(State.HANDLING)
    return DisciplineReferral.objects.create(case=case, unit=bureau.unit_a, trigger="ladder", reason="超期",
                                             created_at=timezone.now())


def _step(bureau, superuser):
    case = bureau.case_in(State.HANDLING)
    rung = EscalationRung.objects.order_by("threshold_days").first()
    return EscalationStep.objects.create(case=case, clock="reply", level=rung.level, round=1,
                                         due_at=timezone.now(), happened_at=timezone.now())


def _round(bureau, superuser):
    referral = _referral(bureau, superuser)
    return RectificationRound.objects.create(referral=referral, number=1, requirement="请报送整改报告", working_days=3,
                                             due_at=timezone.now(), set_by=superuser, set_at=timezone.now())


# One row per registered model, built the way the site builds it. A new admin fails
# test_every_registered_admin_is_walked until it has a row here.
BUILDERS = {
    "accounts.User": lambda b, su: make_user("clerk_x", unit=b.unit_a),
    "accounts.Unit": lambda b, su: b.unit_b,
    "auth.Group": lambda b, su: Group.objects.create(name="测试角色"),
    "django_celery_beat.IntervalSchedule": lambda b, su: IntervalSchedule.objects.create(every=7, period="days"),
    "django_celery_beat.CrontabSchedule": lambda b, su: CrontabSchedule.objects.create(minute="5", hour="9"),
    "django_celery_beat.SolarSchedule": lambda b, su: SolarSchedule.objects.create(
        event="sunrise", latitude=Decimal("28.1"), longitude=Decimal("112.9")),
    "django_celery_beat.ClockedSchedule": lambda b, su: ClockedSchedule.objects.create(
        clocked_time=timezone.now() + timedelta(days=3)),
    "django_celery_beat.PeriodicTask": lambda b, su: PeriodicTask.objects.create(
        name="测试任务", task="casework.tasks.escalation_sweep",
        interval=IntervalSchedule.objects.create(every=5, period="minutes")),
    "casework.WorkCalendarDay": lambda b, su: WorkCalendarDay.objects.create(
        date=date(2030, 1, 1), is_workday=False, note="元旦"),
    "casework.CalendarYear": lambda b, su: CalendarYear.objects.create(year=2031, source="国务院办公厅通知"),
    "casework.UnitCalendarDay": lambda b, su: UnitCalendarDay.objects.create(
        unit=b.unit_a, date=date(2030, 1, 2), is_workday=False, note="单位调休"),
    "casework.DeadlinePolicy": lambda b, su: DeadlinePolicy.objects.first() or DeadlinePolicy.objects.create(
        message_type="consult", clock="reply", amount=3, source="DESIGN.md §4"),
    "casework.EscalationRung": lambda b, su: EscalationRung.objects.order_by("threshold_days").first(),
    "casework.Platform": lambda b, su: b.platform,
    "casework.Case": lambda b, su: b.case_in(State.REPLIED),
    "casework.ReplyDraft": lambda b, su: b.case_in(State.OFFICE_REVIEW).drafts.first(),
    "casework.CoUnitTask": lambda b, su: joint.co_unit_assign(
        case=b.case_in(State.HANDLING), acting_user=b.dispatcher, unit=b.unit_b, task="核实", working_days=3),
    "casework.Extension": lambda b, su: joint.extension_request(
        case=b.case_in(State.HANDLING), acting_user=b.handler_a, clock="reply", working_days=2, reason="需调查"),
    "casework.CaseEvent": lambda b, su: CaseEvent.objects.filter(case=b.case_in(State.DISPATCHED)).first(),
    "casework.SupervisionNotice": _notice,
    "casework.CaseClock": lambda b, su: CaseClock.objects.filter(case=b.case_in(State.HANDLING)).first(),
    "casework.EscalationStep": _step,
    "casework.DisciplineReferral": _referral,
    # issue 13: 办理不力事由 and quality rungs (superuser configuration), quality steps (records)
    "casework.PoorHandlingReason": lambda b, su: PoorHandlingReason.objects.order_by("order").first(),
    "casework.QualityRung": lambda b, su: QualityRung.objects.order_by("pk").first(),
    "casework.QualityStep": lambda b, su: QualityStep.objects.create(
        rung=QualityRung.objects.order_by("pk").first(), case=b.case_in(State.HANDLING), round=1, unit=b.unit_a,
        count=3, happened_at=timezone.now(), status="proposed"),
    "casework.RectificationRound": _round,
    "casework.Notification": lambda b, su: Notification.objects.create(
        key="test-1", recipients=["a@bureau.invalid"], subject="测试通知", body="正文"),
    "assessment.AssessmentWeights": lambda b, su: AssessmentWeights.objects.create(),
    "assessment.Topic": lambda b, su: Topic.objects.create(title="路灯不亮"),
    "assessment.KnowledgeArticle": lambda b, su: KnowledgeArticle.objects.create(title="户口迁移", body="所需材料"),
    "assessment.TopicAlertRule": lambda b, su: TopicAlertRule.objects.create(),
    "assessment.TopicAlert": lambda b, su: TopicAlert.objects.create(
        topic=Topic.objects.create(title="噪音扰民"), week_start=date(2026, 3, 2), count=9, baseline=1.0),
    # bulk_create: no post_save signal, which django-axes' cache handler (REDIS_URL set) does not take.
    "axes.AccessAttempt": lambda b, su: AccessAttempt.objects.bulk_create([AccessAttempt(
        username="x", ip_address="203.0.113.1", user_agent="t", failures_since_start=1, get_data="",
        post_data="", http_accept="", path_info="/")])[0],
    "axes.AccessLog": lambda b, su: AccessLog.objects.bulk_create([AccessLog(
        username="x", ip_address="203.0.113.1", user_agent="t", http_accept="", path_info="/")])[0],
    "axes.AccessFailureLog": lambda b, su: AccessFailureLog.objects.bulk_create([AccessFailureLog(
        username="x", ip_address="203.0.113.1", user_agent="t", http_accept="", path_info="/",
        locked_out=False)])[0],
    "casework.AuditVerificationRun": lambda b, su: AuditVerificationRun.objects.create(started_at=timezone.now()),
    "casework.ImportJob": lambda b, su: ImportJob.objects.create(platform=b.platform, file_name="a.csv",
                                                                 created_by=su),
    "casework.PublishedReply": lambda b, su: b.case_in(State.REPLIED).published_replies.first(),
    "casework.RouterModel": lambda b, su: RouterModel.objects.create(
        trained_at=timezone.now(), n_cases=40, n_units=2, size_bytes=1, blob=b"x", is_active=False),
    "assessment.ImprovementAction": lambda b, su: ImprovementAction.objects.create(
        topic=Topic.objects.create(title="噪音"), unit=b.unit_a, description="加强巡查",
        due_date=date(2026, 6, 30), started_on=date(2026, 4, 1), assigned_by=su),
}

LABELS = sorted(model._meta.label for model in admin.site._registry)


def _admin_for(label):
    return next(ma for m, ma in admin.site._registry.items() if m._meta.label == label)


def _request(user):
    request = RequestFactory().get("/")
    request.user = user
    return request


@pytest.fixture
def superuser(db):
    return User.objects.create_superuser("root", "root@bureau.invalid", "pw", full_name="系统管理员")


@pytest.fixture
def other_admin(db):
    return User.objects.create_superuser("other", "other@bureau.invalid", "pw", full_name="另一位管理员")


def _build(label, bureau, superuser):
    obj = BUILDERS[label](bureau, superuser)
    assert obj is not None and obj.pk is not None, label
    return obj


def test_every_registered_admin_is_walked():
    assert set(LABELS) <= set(BUILDERS), sorted(set(LABELS) - set(BUILDERS))


# Fields whose text has a syntax of its own: what a user would type there.
TYPED = {"django_celery_beat.CrontabSchedule": ("minute", "7")}


def _user_input(model, data, text_fields):
    """A change the user types: a plain text field if the form has one, else a number or a date."""
    if model._meta.label in TYPED:
        return TYPED[model._meta.label]
    for name in text_fields:
        try:
            field = model._meta.get_field(name)
        except Exception:
            continue
        if type(field).__name__ in ("CharField", "TextField") and not field.choices and name in data:
            return name, "我的输入甲乙"[: max(4, min(field.max_length or 99, 99))]
    for name, values in data.items():
        try:
            field = model._meta.get_field(name)
        except Exception:
            continue
        if type(field).__name__ in ("PositiveSmallIntegerField", "SmallIntegerField", "IntegerField",
                                    "PositiveIntegerField", "DecimalField") and values and values[0]:
            return name, str(int(Decimal(values[0])) + 1)
    for name, values in data.items():  # a split date-time widget: the date part
        if name.endswith("_0") and values and len(values[0]) == 10:
            return name, _next_day(values[0])
    raise AssertionError(f"no field to type into on {model._meta.label}")


def _next_day(text):
    sep = "/" if "/" in text else "-"
    day = date.fromisoformat(text.replace("/", "-")) + timedelta(days=1)
    return day.isoformat().replace("-", sep)


def _retyped(typed):
    if typed[:1].isdigit() and len(typed) == 10:
        return _next_day(typed)
    if typed.isdigit():
        return str(int(typed) + 1)
    return typed[:-1] + "丙"


def _same(shown, typed):
    if shown == typed:
        return True
    try:
        return Decimal(shown) == Decimal(typed)
    except ArithmeticError:
        return False


@pytest.mark.parametrize("label", LABELS)
def test_a_stale_change_form_is_refused_and_keeps_the_input(label, client, bureau, superuser, other_admin):
    model_admin = _admin_for(label)
    model = model_admin.model
    obj = _build(label, bureau, superuser)
    url = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_change", args=[obj.pk])
    client.force_login(superuser)
    if not model_admin.has_change_permission(_request(superuser), obj):
        before = row_values(obj)
        assert client.post(url, {"_save": "1"}).status_code == 403
        assert row_values(obj) == before
        return
    form_id = f"{model._meta.model_name}_form"

    # Positive control: the same kind of submit on an unchanged row is saved.
    page = client.get(url)
    assert page.status_code == 200
    data, text_fields = read_form(page.content.decode(), form_id)
    assert "_version" in data, f"{label}: the change form carries no version"
    name, typed = _user_input(model, data, text_fields)
    response = client.post(url, {**data, name: [typed], "_save": ["1"]})
    assert response.status_code == 302, (label, response.content.decode()[-3000:])
    saved, _text = read_form(client.get(url).content.decode(), form_id)
    assert _same(saved[name][0], typed), (label, saved[name], typed)

    # Stale: load, another admin changes the row, submit.
    page = client.get(url)
    data, _text = read_form(page.content.decode(), form_id)
    typed2 = _retyped(typed)
    changed = change_underneath(obj, by=other_admin, avoid={name.removesuffix("_0")})
    after_other = row_values(obj)
    response = client.post(url, {**data, name: [typed2], "_save": ["1"]})
    body = response.content.decode()
    assert response.status_code == 200, (label, changed, response.status_code)
    assert REFUSED in body and "另一位管理员" in body, (label, body[-3000:])
    assert row_values(obj) == after_other
    kept, _text = read_form(body, form_id)
    assert _same(kept[name][0], typed2)
    # The page now carries the current version: a deliberate second save goes through.
    assert client.post(url, {**kept, "_save": ["1"]}).status_code == 302


ACTIONS = sorted(
    (label, name)
    for label in LABELS
    for name in _admin_for(label).get_actions(_request(User(is_superuser=True, is_active=True, is_staff=True)))
)


@pytest.mark.parametrize(("label", "action"), ACTIONS)
def test_an_action_leaves_out_a_row_changed_since_it_was_listed(label, action, client, bureau, superuser,
                                                                  other_admin):
    model_admin = _admin_for(label)
    model = model_admin.model
    _build(label, bureau, superuser)
    url = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")
    client.force_login(superuser)
    page = client.get(url)
    assert page.status_code == 200
    data, _text = read_form(page.content.decode(), "changelist-form")
    versions = data.get("_row_version", [])
    assert versions, f"{label}: the changelist carries no row versions"
    pk = versions[0].rpartition(":")[0]
    obj = model._base_manager.get(pk=pk)
    change_underneath(obj, by=other_admin)
    after_other = row_values(obj)

    response = client.post(url, {"action": action, "index": "0", "_selected_action": [pk],
                                 "_row_version": versions}, follow=True)
    body = response.content.decode()
    assert response.status_code == 200, (label, action)
    assert model._base_manager.filter(pk=pk).exists()
    assert row_values(obj) == after_other
    assert REFUSED in body and NOT_ACTED in body and "另一位管理员" in body, (label, action, body[-2000:])


def _intermediate_step(label, action, client, bureau, superuser):
    """First step of ``action`` on a built row, as the changelist posts it: (url, pk, page form) or None.

    None when the action answers at once (no page of its own with a form that posts the action again).
    """
    model = _admin_for(label).model
    _build(label, bureau, superuser)
    url = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")
    client.force_login(superuser)
    data, _text = read_form(client.get(url).content.decode(), "changelist-form")
    versions = data.get("_row_version", [])
    pk = versions[0].rpartition(":")[0]
    step1 = client.post(url, {"action": action, "index": "0", "_selected_action": [pk], "_row_version": versions})
    if (step1.status_code != 200 or not step1.get("Content-Type", "").startswith("text/html")
            or "changelist-form" in step1.content.decode()):
        return None
    form, _text = read_form(step1.content.decode())
    if form.get("action") != [action]:
        return None
    return url, pk, form


@pytest.mark.parametrize(("label", "action"), ACTIONS)
def test_the_second_step_of_an_intermediate_page_leaves_out_a_row_changed_meanwhile(
        label, action, client, bureau, superuser, other_admin):
    """Confirmation pages (delete, bulk archive, bulk dispatch, …) carry no row versions of their own:
    their second step is checked against what the changelist showed, so a row changed while the
    page was open is left out with the refusal, whatever the action."""
    step = _intermediate_step(label, action, client, bureau, superuser)
    if step is None:
        return  # this action answers at once (test_intermediate_pages_are_walked names those that do not)
    url, pk, form = step
    model = _admin_for(label).model
    obj = model._base_manager.get(pk=pk)
    change_underneath(obj, by=other_admin)
    after_other = row_values(obj)
    body = client.post(url, form, follow=True).content.decode()
    assert model._base_manager.filter(pk=pk).exists(), (label, action)
    assert row_values(obj) == after_other, (label, action)
    assert REFUSED in body and NOT_ACTED in body and "另一位管理员" in body, (label, action, body[-2000:])


@pytest.mark.parametrize(("label", "action"), [
    ("casework.Case", "bulk_archive"), ("assessment.KnowledgeArticle", "delete_selected"),
    ("casework.DeadlinePolicy", "delete_selected"), ("casework.Platform", "delete_selected"),
])
def test_intermediate_pages_are_walked(label, action, client, bureau, superuser):
    """The walk above does find the confirmation pages (so its early return is not what passes it)."""
    assert _intermediate_step(label, action, client, bureau, superuser) is not None


def test_bulk_dispatch_second_step_leaves_out_a_message_changed_while_the_page_was_open(
        client, bureau, superuser, other_admin):
    case = bureau.case_in(State.REGISTERED)
    url = reverse("admin:casework_case_changelist")
    client.force_login(superuser)
    data, _t = read_form(client.get(url).content.decode(), "changelist-form")
    step1 = client.post(url, {"action": "bulk_dispatch", "index": "0", "_selected_action": [case.pk],
                              "_row_version": data["_row_version"]})
    form, _t = read_form(step1.content.decode())
    assert form["action"] == ["bulk_dispatch"] and form.get("unit_%d" % case.pk)
    form["unit_%d" % case.pk] = [str(bureau.unit_a.pk)]
    change_underneath(case, by=other_admin, avoid={"state", "lead_unit_id"})
    body = client.post(url, form, follow=True).content.decode()
    case.refresh_from_db()
    assert case.state == State.REGISTERED
    assert REFUSED in body and NOT_ACTED in body
    # Shown again with nothing changed: the dispatch goes through.
    data, _t = read_form(client.get(url).content.decode(), "changelist-form")
    step1 = client.post(url, {"action": "bulk_dispatch", "index": "0", "_selected_action": [case.pk],
                              "_row_version": data["_row_version"]})
    form, _t = read_form(step1.content.decode())
    form["unit_%d" % case.pk] = [str(bureau.unit_a.pk)]
    client.post(url, form)
    case.refresh_from_db()
    assert case.state != State.REGISTERED


def test_actions_are_walked():
    names = {a for _label, a in ACTIONS}
    assert {"bulk_archive", "dismiss", "confirm", "mark_common", "confirm_years", "delete_selected",
            "export_csv"} <= names


def test_delete_confirmation_keeps_the_versions_of_the_first_step(client, bureau, superuser, other_admin):
    article = KnowledgeArticle.objects.create(title="户口迁移", body="所需材料")
    url = reverse("admin:assessment_knowledgearticle_changelist")
    client.force_login(superuser)
    data, _t = read_form(client.get(url).content.decode(), "changelist-form")
    step1 = client.post(url, {"action": "delete_selected", "index": "0", "_selected_action": [article.pk],
                              "_row_version": data["_row_version"]})
    assert step1.status_code == 200 and 'name="post"' in step1.content.decode()
    change_underneath(article, by=other_admin)
    step2 = client.post(url, {"action": "delete_selected", "_selected_action": [article.pk], "post": "yes"},
                        follow=True)
    assert REFUSED in step2.content.decode()
    assert KnowledgeArticle.objects.filter(pk=article.pk).exists()


def test_the_delete_page_refuses_a_row_changed_since_it_was_shown(client, superuser, other_admin):
    article = KnowledgeArticle.objects.create(title="户口迁移", body="所需材料")
    url = reverse("admin:assessment_knowledgearticle_delete", args=[article.pk])
    client.force_login(superuser)
    assert client.get(url).status_code == 200
    change_underneath(article, by=other_admin)
    response = client.post(url, {"post": "yes"}, follow=True)
    assert REFUSED in response.content.decode()
    assert KnowledgeArticle.objects.filter(pk=article.pk).exists()
    # Shown again, then deleted: goes through.
    client.get(url)
    client.post(url, {"post": "yes"})
    assert not KnowledgeArticle.objects.filter(pk=article.pk).exists()


EDITABLE = sorted(label for label in LABELS if _admin_for(label).list_editable)


def test_list_editable_changelists_are_walked():
    assert "casework.DeadlinePolicy" in EDITABLE


@pytest.mark.parametrize("label", EDITABLE)
def test_a_stale_list_edit_saves_nothing_and_keeps_the_input(label, client, bureau, superuser, other_admin):
    model_admin = _admin_for(label)
    model = model_admin.model
    _build(label, bureau, superuser)
    url = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")
    client.force_login(superuser)
    data, _t = read_form(client.get(url).content.decode(), "changelist-form")
    pk = data["form-0-id"][0]
    obj = model._base_manager.get(pk=pk)
    number = next(f for f in model_admin.list_editable
                  if type(model._meta.get_field(f)).__name__.endswith("IntegerField"))
    typed = str(int(data[f"form-0-{number}"][0]) + 2)
    change_underneath(obj, by=other_admin, avoid=set())
    after_other = row_values(obj)
    response = client.post(url, {**data, f"form-0-{number}": [typed], "_save": ["1"]})
    body = response.content.decode()
    assert response.status_code == 200
    assert REFUSED in body and "另一位管理员" in body
    assert row_values(obj) == after_other
    kept, _t = read_form(body, "changelist-form")
    assert kept[f"form-0-{number}"] == [typed]


def test_the_refusal_says_what_changed_and_when(client, superuser, other_admin):
    article = KnowledgeArticle.objects.create(title="户口迁移", body="所需材料")
    url = reverse("admin:assessment_knowledgearticle_change", args=[article.pk])
    client.force_login(superuser)
    data, _t = read_form(client.get(url).content.decode(), "knowledgearticle_form")
    changed = change_underneath(article, by=other_admin, avoid={"title"})
    response = client.post(url, {**data, "title": ["户口迁入"], "_save": ["1"]})
    body = response.content.decode()
    label = str(KnowledgeArticle._meta.get_field(changed).verbose_name)
    assert label in body and timezone.localtime().strftime("%Y-%m-%d") in body
