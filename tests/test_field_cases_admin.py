"""Field cases C01, C03, C12, C13, C14, C15 and C17 (shared/cases/FIELD_CASES.md) against the admin.

Each test turns one scenario of a field case into an assertion on the value that matters: the status
code, the state, the number of audit events and admin log entries, the rendered HTML.
"""

import html
from html.parser import HTMLParser
import re

from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import Group, Permission
from django.contrib.messages import get_messages
from django.core import mail
from django.db import connection
from django.test import Client
from django.urls import reverse
from django.utils import timezone
import pytest

from accounts import roles
from casework import services
from casework.models import (
    Case,
    Clock,
    DisciplineReferral,
    EscalationLevel,
    EscalationStep,
    Notification,
    ReplyDraft,
    State,
    SupervisionNotice,
)
from tests.factories import make_user, run_together

CHANGELIST = "admin:casework_case_changelist"
on_postgres = pytest.mark.skipif(connection.vendor != "postgresql",
                                 reason="SQLite serialises writers and hides the race (needs PG)")


def change_url(case):
    return reverse("admin:casework_case_change", args=[case.pk])


def act_url(case, action):
    return reverse("admin:casework_case_act", args=[case.pk, action])


def messages_of(response):
    return [str(m) for m in get_messages(response.wsgi_request)]


def case_logentries(case):
    return LogEntry.objects.filter(object_id=str(case.pk), content_type__model="case")


def listed_pks(client, **params):
    response = client.get(reverse(CHANGELIST), params)
    assert response.status_code == 200
    return {case.pk for case in response.context["cl"].result_list}


# ---------------------------------------------------------------- C01: children of another unit's case


@pytest.fixture
def children_of_b(bureau):
    """A unit-B case with a draft, events, a supervision notice, an escalation step and a referral."""
    case = bureau.case_in(State.HANDLING, unit=bureau.unit_b)
    draft = services.draft_save(case=case, acting_user=bureau.handler_b, handling_report="已核实",
                                reply_text="您好。")
    now = timezone.now()
    step = EscalationStep.objects.create(case=case, clock=Clock.REPLY, round=1,
                                         level=EscalationLevel.URGE, due_at=now, happened_at=now)
    notice = SupervisionNotice.objects.create(case=case, unit=bureau.unit_b, step=step,
                                              content="请加快办理", opened_at=now)
    referral = DisciplineReferral.objects.create(case=case, unit=bureau.unit_b, reason="超期",
                                                 created_at=now)
    return {
        "case": case,
        "replydraft": draft,
        "caseevent": case.events.order_by("seq").last(),
        "supervisionnotice": notice,
        "escalationstep": step,
        "disciplinereferral": referral,
    }


CHILD_MODELS = ["replydraft", "caseevent", "supervisionnotice", "escalationstep", "disciplinereferral"]


@pytest.mark.parametrize("view", ["change", "history", "delete"])
@pytest.mark.parametrize("model", CHILD_MODELS)
@pytest.mark.parametrize("role", ["handler_a", "head_a"])
def test_c01_child_pages_of_another_units_case_are_not_found(client, bureau, children_of_b, model,
                                                             view, role):
    client.force_login(getattr(bureau, role))
    obj = children_of_b[model]

    response = client.get(reverse(f"admin:casework_{model}_{view}", args=[obj.pk]))

    assert response.status_code == 404


@pytest.mark.parametrize("view", ["change", "history", "delete"])
def test_c01_case_object_pages_of_another_unit_are_not_found(client, bureau, children_of_b, view):
    client.force_login(bureau.handler_a)

    response = client.get(reverse(f"admin:casework_case_{view}", args=[children_of_b["case"].pk]))

    assert response.status_code == 404


@pytest.mark.parametrize("action", ["save_draft", "submit_feedback", "accept", "return_to_office"])
def test_c01_actions_on_another_units_case_are_not_found_and_change_nothing(client, bureau,
                                                                           children_of_b, action):
    case = children_of_b["case"]
    client.force_login(bureau.handler_a)

    response = client.post(act_url(case, action), {"expected_state": State.HANDLING, "reason": "x",
                                                   "handling_report": "篡改", "reply_text": "篡改"})

    assert response.status_code == 404
    case.refresh_from_db()
    assert case.state == State.HANDLING
    assert list(case.drafts.values_list("reply_text", flat=True)) == ["您好。"]


def test_c01_notice_list_shows_only_own_units_notices(client, bureau, children_of_b):
    own = bureau.case_in(State.HANDLING)
    own_notice = SupervisionNotice.objects.create(case=own, unit=bureau.unit_a, content="请加快",
                                                  opened_at=timezone.now())
    client.force_login(bureau.handler_a)

    response = client.get(reverse("admin:casework_supervisionnotice_changelist"))

    assert {n.pk for n in response.context["cl"].result_list} == {own_notice.pk}
    assert client.get(reverse("admin:casework_supervisionnotice_change",
                              args=[own_notice.pk])).status_code == 200


# ---------------------------------------------------------------- C03: citizen text is shown as text

XSS = [
    "[查看详情](javascript:alert(1))",
    "[查看\n详情](javascript:alert(1))",
    "[查看详情](   javascript:alert(1))",
    "[查看详情](jav&#x0D;ascript:alert(1))",
    "<img src=x onerror=alert(1)>",
    '<a href="javascript:alert(1)">点我</a>',
]
PAYLOAD = " ".join(XSS)


class _TagCollector(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.tags = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, attrs))


def unsafe_markup(page: str) -> list[str]:
    """Return the real tags of ``page`` that carry an event handler or a URL with a non-web scheme.

    The page is parsed as a browser would, so text inside attribute values or escaped as ``&lt;``
    is not mistaken for markup.
    """
    parser = _TagCollector()
    parser.feed(page)
    found = []
    for tag, attrs in parser.tags:
        for name, value in attrs:
            if name.startswith("on"):
                found.append(f"<{tag} {name}={value}>")
            if name in {"href", "src", "action", "formaction", "xlink:href"} and value:
                cleaned = re.sub(r"[\x00-\x20]", "", value).lower()
                scheme = re.match(r"^([a-z][a-z0-9+.-]*):", cleaned)
                if scheme and scheme.group(1) not in {"http", "https", "mailto"}:
                    found.append(f"<{tag} {name}={value}>")
    return found


@pytest.fixture
def hostile_case(bureau):
    """A replied case whose citizen text, handler draft, send-back reason and notice carry XSS."""
    case = bureau.case_in(State.LEADER_REVIEW, subject="路灯 " + XSS[4], body=PAYLOAD,
                          citizen_name="<img src=x onerror=alert(1)>")
    services.case_leader_send_back(case=case, acting_user=bureau.leader, reason=PAYLOAD)
    services.draft_save(case=case, acting_user=bureau.handler_a, handling_report=PAYLOAD,
                        reply_text=PAYLOAD, policy_basis=PAYLOAD, measures=PAYLOAD)
    SupervisionNotice.objects.create(case=case, unit=bureau.unit_a, content=PAYLOAD,
                                     opened_at=timezone.now())
    services.case_submit_feedback(case=case, acting_user=bureau.handler_a)
    services.case_office_approve(case=case, acting_user=bureau.reviewer)
    services.case_leader_approve(case=case, acting_user=bureau.leader)
    services.case_publish_reply(case=case, acting_user=bureau.dispatcher, where="问政西地省")
    return Case.objects.get(pk=case.pk)


def test_c03_changelist_shows_hostile_subject_as_text(client, bureau, hostile_case):
    client.force_login(bureau.dispatcher)

    page = client.get(reverse(CHANGELIST)).content.decode()

    assert "路灯 &lt;img src=x onerror=alert(1)&gt;" in page
    assert unsafe_markup(page) == []


@pytest.mark.parametrize("role", ["dispatcher", "handler_a"])
def test_c03_case_page_shows_every_hostile_text_as_text(client, bureau, hostile_case, role):
    client.force_login(getattr(bureau, role))

    page = client.get(change_url(hostile_case)).content.decode()

    assert hostile_case.published_reply == PAYLOAD
    assert unsafe_markup(page) == []
    assert "<img src=x" not in page
    escaped = html.escape(PAYLOAD, quote=False)
    # body, report, basis, measures, draft reply, published reply, notice, send-back reason
    assert page.count(escaped.split("\n")[0]) >= 7
    assert "&lt;img src=x onerror=alert(1)&gt;" in page


def test_c03_unsafe_markup_detector_catches_a_live_link_and_handler():
    assert unsafe_markup('<a href=" jav&#x0D;ascript:alert(1)">x</a>') != []
    assert unsafe_markup("<img src=x onerror=alert(1)>") != []
    assert unsafe_markup('<a href="/admin/">x</a><a href="https://x.invalid">y</a>') == []


# ---------------------------------------------------------------- C12: two leaders at the same moment






@on_postgres
@pytest.mark.django_db(transaction=True)
def test_c12_two_leaders_acting_at_once_make_exactly_one_transition(bureau, eager_celery):
    leader2 = make_user("leader2", role=roles.LEADER, unit=bureau.leadership, city_wide=bureau.city)
    for _ in range(3):
        case = bureau.case_in(State.LEADER_REVIEW)
        mail.outbox.clear()

        results = run_together(
            lambda case=case: services.case_leader_approve(
                case=case, acting_user=bureau.leader, expected_state=State.LEADER_REVIEW),
            lambda case=case: services.case_leader_send_back(
                case=case, acting_user=leader2, reason="措辞需修改", expected_state=State.LEADER_REVIEW),
        )

        outcomes = sorted(kind for kind, _value in results)
        assert outcomes == ["error", "ok"], results
        loser = next(value for kind, value in results if kind == "error")
        assert isinstance(loser, services.CaseConflict)
        assert "请刷新页面后再操作" in str(loser)
        case.refresh_from_db()
        moves = list(case.events.filter(action__startswith="leader_").values_list("action", "to_state"))
        assert len(moves) == 1
        assert case.state == moves[0][1]
        # The winner's e-mail goes out once: 发回修改 to the unit, or 待发布 to the dispatchers.
        prefix = "【发回修改】" if moves[0][0] == "leader_send_back" else "【待发布】"
        assert Notification.objects.filter(case=case, subject__startswith=prefix).count() == 1
        assert [m.subject.startswith(prefix) for m in mail.outbox] == [True]


@on_postgres
@pytest.mark.django_db(transaction=True)
def test_c12_concurrent_admin_posts_give_one_transition_and_a_reload_message(bureau, eager_celery):
    leader2 = make_user("leader2", role=roles.LEADER, unit=bureau.leadership, city_wide=bureau.city)
    case = bureau.case_in(State.LEADER_REVIEW)
    first, second, double = Client(), Client(), Client()
    first.force_login(bureau.leader)
    second.force_login(leader2)
    double.force_login(bureau.leader)

    results = run_together(
        lambda: first.post(act_url(case, "leader_approve"), {"expected_state": State.LEADER_REVIEW}),
        lambda: second.post(act_url(case, "leader_send_back"),
                            {"expected_state": State.LEADER_REVIEW, "reason": "措辞需修改"}),
        lambda: double.post(act_url(case, "leader_approve"), {"expected_state": State.LEADER_REVIEW}),
    )

    assert [kind for kind, _r in results] == ["ok", "ok", "ok"], results
    assert [r.status_code for _kind, r in results] == [302, 302, 302]
    texts = [" ".join(messages_of(r)) for _kind, r in results]
    assert sum("请刷新页面后再操作" in t for t in texts) == 2, texts
    assert sum("已执行" in t for t in texts) == 1, texts
    case.refresh_from_db()
    moves = list(case.events.filter(action__startswith="leader_").values_list("to_state", flat=True))
    assert moves == [case.state]
    assert case_logentries(case).count() == 1


def test_c12_double_submit_of_the_same_button_is_one_transition(client, bureau):
    case = bureau.case_in(State.LEADER_REVIEW)
    client.force_login(bureau.leader)

    first = client.post(act_url(case, "leader_approve"), {"expected_state": State.LEADER_REVIEW})
    again = client.post(act_url(case, "leader_approve"), {"expected_state": State.LEADER_REVIEW})

    assert (first.status_code, again.status_code) == (302, 302)
    assert any("请刷新页面后再操作" in m for m in messages_of(again))
    assert case.events.filter(action="leader_approve").count() == 1
    assert case_logentries(case).count() == 1


# ---------------------------------------------------------------- C13: the state outside transitions


@pytest.mark.parametrize("role", ["dispatcher", "superuser"])
def test_c13_admin_change_form_post_with_a_state_does_nothing(client, bureau, django_user_model, role):
    case = bureau.case_in(State.HANDLING)
    user = (django_user_model.objects.create_superuser("root", "root@bureau.invalid", "pw")
            if role == "superuser" else getattr(bureau, role))
    client.force_login(user)
    events = case.events.count()

    response = client.post(change_url(case), {"state": State.ARCHIVED, "subject": "改过的主题",
                                              "_save": "保存"})

    assert response.status_code == 403
    case.refresh_from_db()
    assert (case.state, case.events.count()) == (State.HANDLING, events)
    assert case.subject != "改过的主题"


def test_c13_save_as_new_with_a_state_cannot_create_a_case_in_that_state(client, bureau):
    case = bureau.case_in(State.HANDLING)
    client.force_login(bureau.dispatcher)

    client.post(change_url(case), {
        "_saveasnew": "1", "state": State.ARCHIVED, "platform": bureau.platform.pk,
        "subject": "伪造", "body": "伪造", "submitted_at_0": "2026-03-02", "submitted_at_1": "09:00:00",
        "message_type": "consult",
    })

    case.refresh_from_db()
    assert case.state == State.HANDLING
    assert not Case.objects.filter(state=State.ARCHIVED).exists()
    assert set(Case.objects.filter(subject="伪造").values_list("state", flat=True)) <= {State.REGISTERED}


@on_postgres
def test_c13_unknown_state_is_rejected_by_the_postgres_check_constraint(bureau):
    from django.db import IntegrityError, transaction

    case = bureau.case_in(State.HANDLING)
    with pytest.raises(IntegrityError, match="case_state_valid"), transaction.atomic():
        Case.objects.filter(pk=case.pk).update(state="asdf")
    assert Case.objects.get(pk=case.pk).state == State.HANDLING


@on_postgres
@pytest.mark.django_db(transaction=True)
def test_c13_refresh_from_db_sees_a_transition_made_on_another_connection(bureau):
    loaded = Case.objects.get(pk=bureau.case_in(State.DISPATCHED).pk)

    [(kind, value)] = run_together(
        lambda: services.case_accept(case=loaded, acting_user=bureau.handler_a,
                                     expected_state=State.DISPATCHED))
    assert kind == "ok", value
    assert loaded.state == State.DISPATCHED

    loaded.refresh_from_db()

    assert loaded.state == State.HANDLING
    assert loaded.accepted_at is not None


# ---------------------------------------------------------------- C14: forged button, then the real one


def test_c14_forged_leader_button_by_a_handler_is_refused_and_the_leader_logs_once(client, bureau):
    case = bureau.case_in(State.LEADER_REVIEW)
    draft_text = case.drafts.get().reply_text
    events = case.events.count()
    client.force_login(bureau.handler_a)

    # The button's name added by hand to the change form, then a forged POST to the action URL.
    on_form = client.post(change_url(case), {"_leader_approve": "审签同意发布",
                                             "expected_state": State.LEADER_REVIEW})
    forged = client.post(act_url(case, "leader_approve"), {"expected_state": State.LEADER_REVIEW})

    assert on_form.status_code == 403
    assert "您没有对该案件执行此操作的权限。" in messages_of(forged)
    case.refresh_from_db()
    assert (case.state, case.events.count(), case_logentries(case).count()) == (
        State.LEADER_REVIEW, events, 0)

    client.force_login(bureau.leader)
    proper = client.post(act_url(case, "leader_approve"), {"expected_state": State.LEADER_REVIEW,
                                                          "reply_text": "领导顺手改的答复"})

    assert proper.status_code == 302
    case.refresh_from_db()
    assert case.state == State.APPROVED
    new_events = list(case.events.filter(seq__gt=events).values_list(
        "action", "from_state", "to_state", "actor"))
    assert new_events == [("leader_approve", State.LEADER_REVIEW, State.APPROVED, bureau.leader.pk)]
    [entry] = case_logentries(case)
    assert entry.user == bureau.leader
    assert "审签同意发布" in entry.get_change_message()
    assert list(ReplyDraft.objects.filter(case=case).values_list("reply_text", flat=True)) == [draft_text]


# ---------------------------------------------------------------- C15: bulk actions


def test_c15_delete_selected_is_offered_to_nobody_and_a_forged_one_deletes_nothing(
        client, bureau, django_user_model):
    case = bureau.case_in(State.REPLIED)
    root = django_user_model.objects.create_superuser("root", "root@bureau.invalid", "pw")
    for user in (bureau.dispatcher, bureau.handler_a, root):
        client.force_login(user)
        page = client.get(reverse(CHANGELIST)).content.decode()
        assert 'value="delete_selected"' not in page

    client.force_login(bureau.dispatcher)
    client.post(reverse(CHANGELIST), {"action": "delete_selected", "_selected_action": [case.pk],
                                      "post": "yes"})

    assert Case.objects.filter(pk=case.pk).exists()


def test_c15_bulk_archive_is_offered_only_with_the_archive_permission(client, bureau):
    bureau.case_in(State.REPLIED)
    client.force_login(bureau.handler_a)
    assert 'value="bulk_archive"' not in client.get(reverse(CHANGELIST)).content.decode()
    client.force_login(bureau.dispatcher)
    assert 'value="bulk_archive"' in client.get(reverse(CHANGELIST)).content.decode()


def test_c15_bulk_archive_goes_case_by_case_and_reports_the_refused_ones(client, bureau):
    dispatcher_a = make_user("dispatcher_a", role=roles.DISPATCHER, unit=bureau.unit_a)
    replied = bureau.case_in(State.REPLIED)
    archived = bureau.case_in(State.ARCHIVED)
    handling = bureau.case_in(State.HANDLING)
    other_unit = bureau.case_in(State.REPLIED, unit=bureau.unit_b)
    # The rejected message has no lead unit: give the unit-A dispatcher one of unit A instead.
    archived_a = bureau.case_in(State.REPLIED)
    services.case_archive(case=archived_a, acting_user=bureau.dispatcher, reason="网民已确认")
    selected = [replied, archived, handling, other_unit, archived_a]
    events = {c.pk: c.events.count() for c in selected}
    client.force_login(dispatcher_a)

    # The confirmation page comes first; confirmed, with the reason the unfollowed cases need.
    response = client.post(reverse(CHANGELIST), {"action": "bulk_archive", "confirm": "yes",
                                                 "reason": "网民已在平台确认问题解决",
                                                 "_selected_action": [c.pk for c in selected]})

    assert response.status_code == 302
    texts = messages_of(response)
    assert "已归档 1 件。" in texts
    refused = [t for t in texts if t.startswith("未归档")]
    assert sorted(t.split(" ")[1].split(":")[0] for t in refused) == sorted(
        [handling.reference, archived_a.reference])
    states = dict(Case.objects.filter(pk__in=[c.pk for c in selected]).values_list("pk", "state"))
    assert states == {replied.pk: State.ARCHIVED, archived.pk: State.ARCHIVED,
                      handling.pk: State.HANDLING, other_unit.pk: State.REPLIED,
                      archived_a.pk: State.ARCHIVED}
    assert {pk: Case.objects.get(pk=pk).events.count() - n for pk, n in events.items()} == {
        replied.pk: 1, archived.pk: 0, handling.pk: 0, other_unit.pk: 0, archived_a.pk: 0}
    assert case_logentries(replied).count() == 1
    assert not any(other_unit.reference in t for t in texts)


# ---------------------------------------------------------------- C17: model-wide permissions


@pytest.fixture
def handler_group_with_global_perms(bureau):
    """Give the handler group model-wide view/change on cases and access_unit on every unit."""
    group = Group.objects.get(name=roles.HANDLER)
    for app_label, codename in [("casework", "view_case"), ("casework", "change_case"),
                                ("casework", "view_replydraft"), ("casework", "view_caseevent"),
                                ("accounts", "access_unit"), ("accounts", "view_unit")]:
        group.permissions.add(Permission.objects.get(content_type__app_label=app_label, codename=codename))
    bureau.handler_a.user_permissions.add(
        Permission.objects.get(content_type__app_label="accounts", codename="access_unit"))
    return group


def test_c17_global_permissions_do_not_widen_the_handlers_scope(client, bureau,
                                                                handler_group_with_global_perms):
    own = bureau.case_in(State.DISPATCHED)
    unassigned = bureau.case_in(State.REGISTERED)
    other = bureau.case_in(State.HANDLING, unit=bureau.unit_b, subject="岳塘区路灯损坏")
    other_draft = services.draft_save(case=other, acting_user=bureau.handler_b, handling_report="b",
                                      reply_text="b")
    client.force_login(bureau.handler_a)

    assert listed_pks(client) == {own.pk}
    assert listed_pks(client, q=other.subject) == set()
    assert listed_pks(client, state=State.HANDLING) == set()
    assert listed_pks(client, unit=bureau.unit_b.pk) == set()
    assert client.get(change_url(other)).status_code == 404
    assert client.get(change_url(unassigned)).status_code == 404
    assert client.post(act_url(other, "submit_feedback"), {}).status_code == 404
    drafts = client.get(reverse("admin:casework_replydraft_changelist"))
    assert other_draft.pk not in {d.pk for d in drafts.context["cl"].result_list}
    assert client.get(reverse("admin:casework_replydraft_change", args=[other_draft.pk])).status_code == 404
    assert bureau.unit_b.name not in client.get(reverse(CHANGELIST)).content.decode()


def test_c17_global_change_permission_does_not_open_the_case_form_for_editing(
        client, bureau, handler_group_with_global_perms):
    own = bureau.case_in(State.HANDLING)
    client.force_login(bureau.handler_a)

    response = client.post(change_url(own), {"subject": "改", "_save": "1"})

    assert response.status_code == 403
    assert Case.objects.get(pk=own.pk).subject == own.subject


def test_c17_superuser_still_sees_every_case(client, bureau, django_user_model,
                                             handler_group_with_global_perms):
    cases = {bureau.case_in(State.REGISTERED).pk, bureau.case_in(State.DISPATCHED).pk,
             bureau.case_in(State.HANDLING, unit=bureau.unit_b).pk}
    client.force_login(django_user_model.objects.create_superuser("root", "root@bureau.invalid", "pw"))

    assert listed_pks(client) == cases
