"""Issue 8 §2, the named examples: knowledge-base articles, deadline policies edited in the list,
the topic "dismiss" action, the custom admin views (notice answer, referral outcome, topic split),
and two sessions submitting at the same moment on PostgreSQL.
"""

from django.db import connection
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from guardian.shortcuts import get_objects_for_user
import pytest

from accounts import roles
from accounts.models import Unit, User
from accounts.services import unit_access_grant
from assessment.models import AssessmentWeights, KnowledgeArticle, Topic, TopicMembership
from casework import escalation
from casework.models import DeadlinePolicy, DisciplineReferral, State, SupervisionNotice
from tests.factories import make_user, run_together
from tests.stale_helpers import read_form

REFUSED = "在您打开页面后已被"
on_postgres = pytest.mark.skipif(connection.vendor != "postgresql",
                                 reason="SQLite serialises writers and hides the race (needs PG)")


def _clerk(bureau, name, full_name):
    user = make_user(name, role=roles.DISPATCHER, unit=bureau.office, city_wide=bureau.city)
    user.full_name = full_name
    user.save(update_fields=["full_name"])
    return user


def test_a_knowledge_base_article_saved_from_an_older_page_is_refused(client, bureau):
    li, zhao = _clerk(bureau, "li", "李娜"), _clerk(bureau, "zhao", "赵磊")
    article = KnowledgeArticle.objects.create(title="户口迁移", body="需要身份证、户口簿。")
    url = reverse("admin:assessment_knowledgearticle_change", args=[article.pk])
    other = Client()
    client.force_login(li)
    other.force_login(zhao)
    mine, _t = read_form(client.get(url).content.decode(), "knowledgearticle_form")
    theirs, _t = read_form(other.get(url).content.decode(), "knowledgearticle_form")
    assert other.post(url, {**theirs, "body": ["需要身份证、户口簿和准迁证。"], "_save": "1"}).status_code == 302

    response = client.post(url, {**mine, "body": ["需要身份证。另附办理地址。"], "_save": "1"})
    body = response.content.decode()
    assert response.status_code == 200
    assert REFUSED in body and "赵磊" in body and "标准答复" in body
    article.refresh_from_db()
    assert article.body == "需要身份证、户口簿和准迁证。"
    assert read_form(body, "knowledgearticle_form")[0]["body"] == ["需要身份证。另附办理地址。"]


def test_a_deadline_policy_edited_in_the_list_from_an_older_page_is_refused(client, bureau):
    first = User.objects.create_superuser("root1", "r1@bureau.invalid", "pw", full_name="管理员甲")
    second = User.objects.create_superuser("root2", "r2@bureau.invalid", "pw", full_name="管理员乙")
    url = reverse("admin:casework_deadlinepolicy_changelist")
    other = Client()
    client.force_login(first)
    other.force_login(second)
    mine, _t = read_form(client.get(url).content.decode(), "changelist-form")
    theirs, _t = read_form(other.get(url).content.decode(), "changelist-form")
    policy = DeadlinePolicy.objects.get(pk=mine["form-0-id"][0])
    original = policy.amount
    assert other.post(url, {**theirs, "form-0-amount": [str(original + 5)], "_save": "1"}).status_code == 302

    # The first admin changes another row; the row the second one changed is in the same list.
    response = client.post(url, {**mine, "form-1-amount": [str(int(mine["form-1-amount"][0]) + 1)],
                                 "_save": "1"})
    body = response.content.decode()
    assert response.status_code == 200 and REFUSED in body and "管理员乙" in body
    policy.refresh_from_db()
    assert policy.amount == original + 5
    row1 = DeadlinePolicy.objects.get(pk=mine["form-1-id"][0])
    assert str(row1.amount) == mine["form-1-amount"][0]  # nothing of the stale list was saved
    kept, _t = read_form(body, "changelist-form")
    assert kept["form-1-amount"] == [str(int(mine["form-1-amount"][0]) + 1)]


def test_dismissing_a_topic_confirmed_since_it_was_listed_is_refused(client, bureau):
    # Topic review is the office's (assessment.change_topic, held by no role today: superusers).
    li = User.objects.create_superuser("li", "li@bureau.invalid", "pw", full_name="李娜")
    zhao = User.objects.create_superuser("zhao", "zhao@bureau.invalid", "pw", full_name="赵磊")
    lamp, noise = Topic.objects.create(title="路灯不亮"), Topic.objects.create(title="工地噪音")
    for topic in (lamp, noise):
        TopicMembership.objects.create(topic=topic, case=bureau.case_in(State.REGISTERED))
    url = reverse("admin:assessment_topic_changelist")
    other = Client()
    client.force_login(li)
    other.force_login(zhao)
    mine, _t = read_form(client.get(url).content.decode(), "changelist-form")
    theirs, _t = read_form(other.get(url).content.decode(), "changelist-form")
    other.post(url, {"action": "mark_common", "index": "0", "_selected_action": [lamp.pk],
                     "_row_version": theirs["_row_version"]})
    lamp.refresh_from_db()
    assert lamp.status == Topic.Status.CONFIRMED and lamp.is_common_issue

    response = client.post(url, {"action": "dismiss", "index": "0", "_selected_action": [lamp.pk, noise.pk],
                                 "_row_version": mine["_row_version"]}, follow=True)
    body = response.content.decode()
    lamp.refresh_from_db()
    noise.refresh_from_db()
    assert lamp.status == Topic.Status.CONFIRMED and lamp.is_common_issue
    assert noise.status == Topic.Status.DISMISSED
    assert "路灯不亮" in body and "赵磊" in body and "未对其执行操作" in body


def test_assessment_weights_name_the_superuser_who_changed_them(client, db):
    first = User.objects.create_superuser("root1", "r1@bureau.invalid", "pw", full_name="管理员甲")
    second = User.objects.create_superuser("root2", "r2@bureau.invalid", "pw", full_name="管理员乙")
    weights = AssessmentWeights.objects.create()
    url = reverse("admin:assessment_assessmentweights_change", args=[weights.pk])
    other = Client()
    client.force_login(first)
    other.force_login(second)
    mine, _t = read_form(client.get(url).content.decode(), "assessmentweights_form")
    theirs, _t = read_form(other.get(url).content.decode(), "assessmentweights_form")
    assert other.post(url, {**theirs, "satisfaction": ["40"], "_save": "1"}).status_code == 302
    body = client.post(url, {**mine, "satisfaction": ["10"], "_save": "1"}).content.decode()
    assert REFUSED in body and "管理员乙" in body and "满意率权重" in body
    weights.refresh_from_db()
    assert weights.satisfaction == 40


def test_a_notice_answered_since_the_page_was_opened_keeps_the_answer_typed(client, bureau):
    case = bureau.case_in(State.HANDLING, unit=bureau.unit_b)
    notice = SupervisionNotice.objects.create(case=case, unit=bureau.unit_b, content="请按期办结",
                                              opened_by=bureau.dispatcher, opened_at=timezone.now())
    colleague = make_user("handler_b2", role=roles.HANDLER, unit=bureau.unit_b)
    url = reverse("admin:casework_supervisionnotice_answer", args=[notice.pk])
    client.force_login(bureau.handler_b)
    data, _t = read_form(client.get(url).content.decode())
    assert data["_version"][0]
    escalation.supervision_notice_answer(notice=notice, acting_user=colleague, answer="已于昨日办结")
    response = client.post(url, {**data, "answer": ["正在办理,三日内答复"]})
    body = response.content.decode()
    assert response.status_code == 200 and "正在办理,三日内答复" in body and "在您打开页面后" in body
    notice.refresh_from_db()
    assert notice.answer == "已于昨日办结"


def test_a_referral_outcome_recorded_since_the_page_was_opened_keeps_the_note_typed(client, bureau):
    case = bureau.case_in(State.HANDLING)
    referral = DisciplineReferral.objects.create(case=case, unit=bureau.unit_a, trigger="ladder", reason="超期",
                                                 created_at=timezone.now())
    colleague = make_user("jjdc2", role=roles.SUPERVISOR, unit=bureau.discipline, city_wide=bureau.city)
    colleague.full_name = "吴强"
    colleague.save(update_fields=["full_name"])
    url = reverse("admin:casework_disciplinereferral_outcome", args=[referral.pk])
    client.force_login(bureau.supervisor)
    data, _t = read_form(client.get(url).content.decode())
    escalation.referral_record_outcome(referral=referral, acting_user=colleague, kind="talk", note="已约谈")
    body = client.post(url, {**data, "kind": ["criticism"], "note": ["通报批评,限期整改"]}).content.decode()
    assert "通报批评,限期整改" in body and "吴强" in body and REFUSED in body
    referral.refresh_from_db()
    assert referral.outcome == "已约谈"


def test_a_topic_split_from_an_older_page_is_refused_and_keeps_the_choice(client, bureau):
    li = _clerk(bureau, "li", "李娜")
    topic = Topic.objects.create(title="搅拌站噪音")
    cases = [bureau.case_in(State.REGISTERED) for _ in range(3)]
    for case in cases:
        TopicMembership.objects.create(topic=topic, case=case)
    url = reverse("admin:assessment_topic_change", args=[topic.pk])
    client.force_login(li)
    html = client.get(url).content.decode()
    split_url = reverse("admin:assessment_topic_split", args=[topic.pk])
    version = read_form(html, "topic_form")[0]["_version"]
    topic.title = "丽发新城搅拌站噪音"
    topic.save()
    response = client.post(split_url, {"_version": version, "case_ids": [cases[0].pk], "title": "另一个问题"},
                           follow=True)
    body = response.content.decode()
    assert REFUSED in body and 'value="另一个问题"' in body
    assert Topic.objects.count() == 1
    assert f'value="{cases[0].pk}" checked' in body


@on_postgres
@pytest.mark.django_db(transaction=True)
def test_two_sessions_saving_one_article_at_the_same_moment_save_one(bureau):
    li, zhao = _clerk(bureau, "li", "李娜"), _clerk(bureau, "zhao", "赵磊")
    article = KnowledgeArticle.objects.create(title="户口迁移", body="需要身份证。")
    url = reverse("admin:assessment_knowledgearticle_change", args=[article.pk])
    first, second = Client(), Client()
    first.force_login(li)
    second.force_login(zhao)
    d1, _t = read_form(first.get(url).content.decode(), "knowledgearticle_form")
    d2, _t = read_form(second.get(url).content.decode(), "knowledgearticle_form")
    results = run_together(
        lambda: first.post(url, {**d1, "body": ["甲的答复"], "_save": "1"}),
        lambda: second.post(url, {**d2, "body": ["乙的答复"], "_save": "1"}),
    )
    codes = sorted(value.status_code for kind, value in results if kind == "ok")
    assert codes == [200, 302], results
    loser = next(value for _k, value in results if value.status_code == 200).content.decode()
    article.refresh_from_db()
    winner_text = "甲的答复" if "乙的答复" in loser else "乙的答复"
    assert article.body == winner_text and REFUSED in loser


def test_a_user_form_from_an_older_page_does_not_revoke_an_access_unit_granted_since(client, bureau):
    root = User.objects.create_superuser("root1", "r1@bureau.invalid", "pw", full_name="管理员甲")
    url = reverse("admin:accounts_user_change", args=[bureau.handler_a.pk])
    client.force_login(root)
    data, _t = read_form(client.get(url).content.decode(), "user_form")
    unit_access_grant(user=bureau.handler_a, unit=bureau.unit_b)
    body = client.post(url, {**data, "email": ["new@bureau.invalid"], "_save": "1"}).content.decode()
    assert REFUSED in body and "可办理案件的单位" in body
    units = get_objects_for_user(bureau.handler_a, "accounts.access_unit", klass=Unit,
                                 accept_global_perms=False, with_superuser=False)
    assert bureau.unit_b in units


def test_the_version_is_a_field_of_the_change_form_itself(client, bureau):
    # Whatever reads the form (a template, a script walking its fields) carries the version.
    li = _clerk(bureau, "li", "李娜")
    article = KnowledgeArticle.objects.create(title="户口迁移", body="需要身份证。")
    url = reverse("admin:assessment_knowledgearticle_change", args=[article.pk])
    client.force_login(li)
    form = client.get(url).context["adminform"].form
    data = {name: form[name].value() for name in form.fields}
    assert data["_version"]
    KnowledgeArticle.objects.filter(pk=article.pk).update(body="赵磊改过的答复")
    body = client.post(url, {**data, "is_active": "on", "body": "李娜的答复", "_save": "1"}).content.decode()
    assert REFUSED in body
    article.refresh_from_db()
    assert article.body == "赵磊改过的答复"
