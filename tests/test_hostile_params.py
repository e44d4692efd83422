"""Malformed parameters answer 400 or a form error, never 500, on every URL of the site (issue 9 §3).

The URL resolver is walked (every named URL: admin changelists, object pages and custom views, the
assessment pages, the API, i18n), each URL is filled with real and bogus ids, and requested as each
role with hostile query strings (``?unit=abc``, ``end=9999-12-31``, ``year=1``, overflowing ids,
full-width digits, NUL bytes, bogus ordering, date-hierarchy overflow, unknown filters) and, for
views that take a form, a hostile POST. Every answer below 500 passes; the failures are listed.
"""

from datetime import datetime
from zoneinfo import ZoneInfo

from django.contrib import admin
from django.test import Client
from django.urls import NoReverseMatch, URLPattern, URLResolver, get_resolver, reverse
import pytest

from accounts import roles
from accounts.models import User
from assessment.models import ImprovementAction, KnowledgeArticle, Topic, TopicMembership
from casework.admin import ACTIONS, JOINT_ACTIONS
from casework.models import State
from tests.factories import make_user

SHANGHAI = ZoneInfo("Asia/Shanghai")
SKIP = {"admin:logout", "admin:login", "admin:password_change", "admin:password_change_done", "set_language",
        "admin:view_on_site"}
ROLES = ["superuser", "dispatcher", "reviewer", "leader", "leader_a", "supervisor", "handler_a", "head_a"]

HOSTILE_QUERIES = [
    {"unit": "abc"},
    {"start": "2026-01-01", "end": "9999-12-31"},
    {"year": "1"},
    {"year": "99999999999999999999", "kind": "district"},
    {"start": "abc", "end": "２０２６-01-01", "metric": "handled_on_time", "part": "num",
     "unit": "99999999999999999999", "page": "abc"},
    {"year": "2026", "metric": "sign_for_on_time", "part": "den", "unit": "-1", "page": "99999", "kind": "x"},
    {"year": "２０２６", "metric": "referrals", "part": "num", "unit": "１"},
    {"o": "-1.x.99", "p": "-5", "q": "%_'\"\\", "e": "1", "_popup": "1"},
    {"_to_field": "citizen_contact", "_changelist_filters": "unit=abc&year=1"},
    {"submitted_at__year": "9999", "submitted_at__month": "12", "submitted_at__day": "31"},
    {"platform": "abc", "queue": "nonsense", "overdue": "maybe", "state__exact": "x", "open": "2"},
    {"q": "a\x00b", "unit": "\x00", "year": "20\x0026"},
    {"term": "x\x00", "app_label": "casework", "model_name": "case", "field_name": "citizen_contact"},
    {"term": "x", "app_label": "assessment", "model_name": "improvementaction", "field_name": "topic"},
]

HOSTILE_POST = {
    "unit": "abc", "due_date": "9999-99-99", "started_on": "abc", "case_ids": ["abc", "１"],
    "external_id": "Ｔ００００１", "platform": "abc", "submitted_at_0": "9999-12-31", "submitted_at_1": "25:61",
    "expected_state": "x", "lock_version": "abc", "extension_id": "abc", "task_id": "99999999999999999999",
    "leader": "abc", "decision": "x", "requested_days": "99999999999999999999", "days": "-1",
    "action": "nonsense", "_selected_action": ["abc", "99999999999999999999"], "index": "abc",
    "answer": "", "kind": "x", "note": "x" * 5000, "title": "x" * 500, "main_reference": "x\x00",
    "where": "", "text": "", "reason": "", "result": "x", "rectification": "x", "clock": "x",
    "subject": "", "body": "", "message_type": "x", "year": "1", "file": "not-a-file",
}


def named_urls(resolver=None, namespace=""):
    """Yield ``(name, pattern)`` of every named URL of the site."""
    resolver = resolver or get_resolver()
    for p in resolver.url_patterns:
        if isinstance(p, URLResolver):
            yield from named_urls(p, f"{namespace}{p.namespace}:" if p.namespace else namespace)
        elif isinstance(p, URLPattern) and p.name:
            yield namespace + p.name, p


@pytest.fixture
def world(bureau):
    b = bureau
    b.superuser = User.objects.create_superuser(username="root", password="pw", email="root@bureau.invalid")
    b.leader_a = make_user("leader_a", role=roles.LEADER, unit=b.unit_a)
    at = datetime(2026, 3, 2, 9, 0, tzinfo=SHANGHAI)
    cases = [b.case_in(state, submitted_at=at) for state in
             (State.REGISTERED, State.DISPATCHED, State.HANDLING, State.OFFICE_REVIEW, State.APPROVED)]
    cases.append(b.case_in(State.HANDLING, unit=b.unit_b, submitted_at=at))
    topic = Topic.objects.create(title="噪音", is_common_issue=True, status=Topic.Status.CONFIRMED)
    for case in cases[:3]:
        TopicMembership.objects.create(topic=topic, case=case, similarity=0.5)
    KnowledgeArticle.objects.create(title="户口", body="……", keywords="户口")
    ImprovementAction.objects.create(topic=topic, unit=b.unit_a, description="整改", due_date=at.date(),
                                     started_on=at.date(), assigned_by=b.dispatcher)
    b.cases = cases
    return b


def url_variants(name, pattern, world) -> list[str]:
    """Return the URLs of ``name`` with real and bogus values for its parameters."""
    converters = getattr(pattern.pattern, "converters", {})
    params = list(converters) or list(pattern.pattern.regex.groupindex)
    if not params:
        return [reverse(name)]
    models = {f"{m._meta.app_label}_{m._meta.model_name}": m for m in admin.site._registry}
    label = name.split(":")[-1].rsplit("_", 1)[0]
    model = models.get(label) or models.get(label.rsplit("_", 1)[0]) if ":" in name else None
    if name == "assessment:articles_for_case" or (model and model._meta.label == "casework.Case"):
        real = [str(c.pk) for c in world.cases]
    else:
        first = model._default_manager.order_by("pk").first() if model else None
        real = [str(first.pk)] if first else []
    choices = {
        "object_id": [*real, "999999", "abc", "１"], "id": [*real, "999999", "abc"], "pk": [*real, "999999"],
        "case_id": [*real, "999999"], "action": [*ACTIONS, *JOINT_ACTIONS, "dispatch", "save_draft",
                                                  "publish_reply", "record_follow_up", "abc"],
        "app_label": ["casework", "assessment", "accounts", "auth", "django_celery_beat", "nonexistent"],
    }
    urls = []
    first_values = {p: choices.get(p, ["1"]) for p in params}
    # Every value of each parameter, the others at their first value.
    for p in params:
        for value in first_values[p]:
            kwargs = {q: (value if q == p else first_values[q][0]) for q in params}
            try:
                urls.append(reverse(name, kwargs=kwargs))
            except NoReverseMatch:
                continue
    return list(dict.fromkeys(urls))


OBJECT_PAGE_QUERY = {"_to_field": "citizen_contact", "_changelist_filters": "unit=abc&year=1", "_popup": "x"}


def _answer(client, method, url, data) -> str | None:
    response = getattr(client, method)(url, data)
    if response.status_code >= 500:
        return f"{method.upper()} {url} {data if method == 'get' else ''} → {response.status_code}"
    return None


def crawl(user, world, queries, *, object_pages: bool = True) -> tuple[int, list[str]]:
    """Request every URL of the site as ``user`` with hostile parameters; return (count, failures).

    ``object_pages=False`` leaves out the standard add/change/history/delete pages of model admins.
    """
    client = Client(raise_request_exception=False)
    client.force_login(user)
    failures, requested = [], 0
    for name, pattern in named_urls():
        if name in SKIP:
            continue
        standard = name.startswith("admin:") and name.endswith(("_change", "_history", "_delete", "_add"))
        if standard and not object_pages:
            continue
        for i, url in enumerate(url_variants(name, pattern, world)):
            calls = []
            if name.endswith("_changelist") or not standard:
                calls += [("get", q) for q in queries] + [("post", HOSTILE_POST)]
            elif i == 0:
                calls += [("get", OBJECT_PAGE_QUERY), ("post", HOSTILE_POST)]
            else:
                calls += [("get", {})]
            for method, data in calls:
                requested += 1
                failure = _answer(client, method, url, data)
                if failure:
                    failures.append(failure)
    return requested, failures


def test_every_url_answers_hostile_parameters_without_a_server_error_as_a_superuser(world):
    requested, failures = crawl(world.superuser, world, HOSTILE_QUERIES)
    assert requested > 500
    assert failures == [], "\n".join(failures)


@pytest.mark.parametrize("role", [r for r in ROLES if r != "superuser"])
def test_every_url_answers_hostile_parameters_without_a_server_error_per_role(world, role):
    # The parameters whose meaning depends on the reader's scope and role, on every changelist and
    # every custom view (object pages are crawled as the superuser above).
    queries = [HOSTILE_QUERIES[i] for i in (0, 1, 4, 11)]
    requested, failures = crawl(getattr(world, role), world, queries, object_pages=False)
    assert requested > 150
    assert failures == [], "\n".join(failures)


def test_the_add_form_reports_a_full_width_duplicate_platform_id_and_keeps_the_input(client, world):
    client.force_login(world.dispatcher)
    existing = world.cases[0]
    full_width = "".join(chr(ord(c) + 0xFEE0) for c in existing.external_id)
    response = client.post(reverse("admin:casework_case_add"), {
        "platform": world.platform.pk, "external_id": full_width, "subject": "重复的留言", "body": "正文",
        "submitted_at_0": "2026-03-02", "submitted_at_1": "09:00:00", "citizen_name": "", "citizen_contact": "",
        "message_type": existing.message_type, "category": "",
    })
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert "external_id" in errors and existing.external_id in str(errors)
    assert "重复的留言" in response.content.decode()  # the input is kept


@pytest.mark.parametrize("query", [
    {"start": "2026-01-01", "end": "9999-12-31"}, {"year": "1"}, {"year": "0"}, {"year": "abc"},
    {"year": "99999999999999999999"}, {"start": "2026-02-30", "end": "2026-03-01"},
    {"start": "2026-03-01", "end": "2026-01-01"}, {"kind": "x"},
])
@pytest.mark.parametrize("name", ["assessment:report", "assessment:report_cases", "assessment:report_export"])
def test_assessment_pages_answer_400_to_a_malformed_period(client, world, name, query):
    client.force_login(world.reviewer)
    if name == "assessment:report_cases":
        query = {**query, "metric": "referrals", "part": "num"}
    response = client.get(reverse(name), query)
    assert response.status_code == 400, (name, query, response.status_code)


@pytest.mark.parametrize("query", [
    {"unit": "abc"}, {"unit": "１x"}, {"metric": "x"}, {"part": "x"}, {"unit": "99999999999999999999"},
    {"unit": "-1"}, {"page": "abc"},
])
@pytest.mark.parametrize("name", ["assessment:report_cases", "assessment:report_export"])
def test_drill_down_and_export_answer_400_or_404_to_malformed_parameters(client, world, name, query):
    client.force_login(world.reviewer)
    response = client.get(reverse(name), {"year": "2026", "metric": "referrals", "part": "num", **query})
    expected = {"unit": 404 if query.get("unit", "").lstrip("-").isdigit() else 400, "page": 200}
    assert response.status_code == expected.get(next(iter(query)), 400), (name, query, response.status_code)
