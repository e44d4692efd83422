"""交办 as the 网评办 works it: only handling units, the type corrected with its clocks, many at once."""

import csv
from datetime import datetime
from pathlib import Path

from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.messages import get_messages
from django.core.exceptions import PermissionDenied
from django.test import Client
from django.urls import reverse
import pytest

from accounts.models import Unit
from accounts.selectors import handling_units_q, unit_is_handling
from casework import calendar, joint, router_service, services
from casework.models import CaseClock, CaseEvent, MessageType, State
from tests.stale_helpers import read_form

pytestmark = pytest.mark.django_db


def _client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


# ---------------------------------------------------------------- only handling units


def test_offices_and_the_bureau_are_not_handling_units(bureau):
    assert not unit_is_handling(unit=bureau.office)
    assert not unit_is_handling(unit=bureau.discipline)
    assert not unit_is_handling(unit=bureau.leadership)
    assert not unit_is_handling(unit=bureau.city)
    assert unit_is_handling(unit=bureau.unit_a)
    assert set(Unit.objects.filter(handling_units_q())) == {bureau.unit_a, bureau.unit_b}


@pytest.mark.parametrize("office", ["office", "discipline", "leadership", "city"])
def test_no_path_dispatches_or_assigns_a_case_to_an_office(bureau, office):
    unit = getattr(bureau, office)
    case = bureau.register()
    with pytest.raises(services.TransitionRefused):
        services.case_dispatch(case=case, acting_user=bureau.dispatcher, unit=unit)
    case.refresh_from_db()
    assert case.state == State.REGISTERED and case.lead_unit is None

    handling = bureau.case_in(State.HANDLING)
    with pytest.raises(services.TransitionRefused):
        joint.co_unit_assign(case=handling, acting_user=bureau.dispatcher, unit=unit, task="协查", working_days=2)

    returned = bureau.case_in(State.DISPATCHED)
    returned = services.case_return_to_office(case=returned, acting_user=bureau.handler_a, reason="不属本单位")
    with pytest.raises(services.TransitionRefused):
        joint.case_return_arbitrate(case=returned, acting_user=bureau.dispatcher, send_back=False, unit=unit)
    returned.refresh_from_db()
    assert returned.state == State.REGISTERED


def test_dispatch_form_offers_only_handling_units(bureau):
    case = bureau.register()
    page = _client(bureau.dispatcher).get(reverse("admin:casework_case_change", args=[case.pk]))
    form = page.context["dispatch_form"]
    assert set(form.fields["unit"].queryset) == {bureau.unit_a, bureau.unit_b}


# ---------------------------------------------------------------- type correction


def _reply_clock(case):
    return CaseClock.objects.get(case=case, clock="reply", round=case.handling_round, stopped_at__isnull=True)


def test_correcting_the_type_recomputes_the_running_clocks_from_their_start(bureau):
    case = bureau.case_in(State.HANDLING, message_type=MessageType.CONSULT)
    clock = _reply_clock(case)
    cal = calendar.work_calendar(unit=bureau.unit_a)
    assert clock.due_at == cal.add_working_days(clock.started_at, 3)

    case = services.case_message_type_set(case=case, acting_user=bureau.dispatcher,
                                          message_type=MessageType.COMPLAIN, reason="实为投诉")
    clock.refresh_from_db()
    assert (clock.amount, clock.due_at) == (15, cal.add_working_days(clock.started_at, 15))
    assert case.reply_due_at == clock.due_at and case.message_type == MessageType.COMPLAIN
    event = CaseEvent.objects.filter(case=case).latest("seq")
    assert (event.action, event.reason, event.payload["from"], event.payload["to"]) == (
        "message_type_set", "实为投诉", MessageType.CONSULT, MessageType.COMPLAIN)
    assert datetime.fromisoformat(event.payload["due"]["reply"]) == clock.due_at


def test_type_correction_after_dispatch_needs_a_reason_a_dispatcher_and_a_fresh_form(bureau):
    case = bureau.case_in(State.HANDLING, message_type=MessageType.CONSULT)
    with pytest.raises(services.TransitionRefused):
        services.case_message_type_set(case=case, acting_user=bureau.dispatcher, message_type=MessageType.COMPLAIN)
    with pytest.raises(PermissionDenied):
        services.case_message_type_set(case=case, acting_user=bureau.handler_a,
                                       message_type=MessageType.COMPLAIN, reason="x")
    with pytest.raises(services.CaseConflict):
        services.case_message_type_set(case=case, acting_user=bureau.dispatcher, message_type=MessageType.COMPLAIN,
                                       reason="x", expected_lock_version=case.lock_version - 1)
    case.refresh_from_db()
    assert case.message_type == MessageType.CONSULT


def test_dispatching_with_a_corrected_type_starts_the_clocks_of_the_corrected_type(bureau):
    case = bureau.register(message_type=MessageType.CONSULT)
    response = _client(bureau.dispatcher).post(
        reverse("admin:casework_case_act", args=[case.pk, "dispatch"]),
        {"unit": bureau.unit_a.pk, "message_type": MessageType.COMPLAIN, "note": "",
         "expected_state": State.REGISTERED},
    )
    assert response.status_code == 302
    case.refresh_from_db()
    assert (case.state, case.message_type) == (State.DISPATCHED, MessageType.COMPLAIN)
    assert _reply_clock(case).amount == 15
    actions = list(CaseEvent.objects.filter(case=case).order_by("seq").values_list("action", flat=True))
    assert actions[-2:] == ["message_type_set", "dispatch"]


def test_type_form_on_the_case_page_moves_the_reply_deadline(bureau):
    case = bureau.case_in(State.HANDLING, message_type=MessageType.CONSULT)
    before = case.reply_due_at
    client = _client(bureau.dispatcher)
    page = client.get(reverse("admin:casework_case_change", args=[case.pk]))
    assert "type_form" in page.context
    client.post(reverse("admin:casework_case_act", args=[case.pk, "set_type"]),
                {"message_type": MessageType.COMPLAIN, "reason": "实为投诉", "lock_version": case.lock_version})
    case.refresh_from_db()
    assert case.message_type == MessageType.COMPLAIN and case.reply_due_at > before
    assert "type_form" not in _client(bureau.handler_a).get(
        reverse("admin:casework_case_change", args=[case.pk])).context


# ---------------------------------------------------------------- bulk dispatch


def test_bulk_dispatch_dispatches_each_row_to_its_unit_and_keeps_refused_rows(bureau):
    bureau.unit_b.keywords = "路灯"
    bureau.unit_b.save(update_fields=["keywords"])
    lamp = bureau.register(subject="小区路灯不亮", body="路灯坏了一个月")
    other = bureau.register()
    gone = bureau.register()
    already = bureau.case_in(State.DISPATCHED)
    client = _client(bureau.dispatcher)
    url = reverse("admin:casework_case_changelist")
    ids = [lamp.pk, other.pk, gone.pk, already.pk]

    page = client.post(url, {"action": "bulk_dispatch", ACTION_CHECKBOX_NAME: ids})
    assert page.status_code == 200
    rows = {r["case"].pk: r for r in page.context["rows"]}
    assert set(rows) == {lamp.pk, other.pk, gone.pk} and page.context["skipped"] == 1
    assert rows[lamp.pk]["suggestion"].unit == bureau.unit_b and rows[lamp.pk]["suggestion"].source == "catalogue"
    assert rows[lamp.pk]["keywords"] == ["路灯"]
    assert rows[lamp.pk]["chosen"] == str(bureau.unit_b.pk)
    assert "路灯" in page.content.decode()

    services.case_reject_invalid(case=gone, acting_user=bureau.dispatcher, reason="重复")  # meanwhile
    page = client.post(url, {"action": "bulk_dispatch", "apply": "1", ACTION_CHECKBOX_NAME: ids, "note": "请办理",
                             f"unit_{lamp.pk}": bureau.unit_b.pk, f"unit_{other.pk}": bureau.unit_a.pk,
                             f"unit_{gone.pk}": bureau.unit_a.pk})
    lamp.refresh_from_db()
    other.refresh_from_db()
    gone.refresh_from_db()
    assert (lamp.state, lamp.lead_unit) == (State.DISPATCHED, bureau.unit_b)
    assert (other.state, other.lead_unit) == (State.DISPATCHED, bureau.unit_a)
    assert gone.state == State.ARCHIVED
    # The row rejected meanwhile is not dispatched, and the dispatcher is told so.
    assert page.status_code == 302
    told = [str(m) for m in get_messages(page.wsgi_request)]
    assert any("已交办 2 件" in m for m in told) and any("2 件已不是待交办状态" in m for m in told)
    assert CaseEvent.objects.filter(case=lamp, action="dispatch").count() == 1


def test_bulk_dispatch_shows_the_learned_top_three_and_records_whether_each_was_taken(bureau, settings):
    """Issue 12 §1: bulk dispatch shows what the case page shows (the model's top three with their
    confidence and words) and each dispatch records the suggestion and whether it was taken."""
    settings.CASEWORK_ROUTER_MIN_HISTORY = 12
    with (Path(__file__).parent / "data" / "router_small.csv").open(encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    by_cat = {c: [r for r in rows if r["category"] == c] for c in ("交通运输", "卫生计生")}
    for cat, unit in (("交通运输", bureau.unit_a), ("卫生计生", bureau.unit_b)):
        for r in by_cat[cat][:8]:
            bureau.case_in(State.REPLIED, unit=unit, subject=r["subject"], body=r["body"])
    assert router_service.router_train() is not None
    traffic = bureau.register(subject=by_cat["交通运输"][9]["subject"], body=by_cat["交通运输"][9]["body"])
    health = bureau.register(subject=by_cat["卫生计生"][9]["subject"], body=by_cat["卫生计生"][9]["body"])
    client = _client(bureau.dispatcher)
    url = reverse("admin:casework_case_changelist")
    page = client.post(url, {"action": "bulk_dispatch", ACTION_CHECKBOX_NAME: [traffic.pk, health.pk]})
    shown = {r["case"].pk: r for r in page.context["rows"]}
    suggestion = shown[traffic.pk]["suggestion"]
    assert suggestion.source == "model" and suggestion.unit == bureau.unit_a
    assert shown[traffic.pk]["chosen"] == str(bureau.unit_a.pk)  # preselected
    body = page.content.decode()
    assert body.count('class="cw-top3"') == 2 and "%" in body and suggestion.candidates[0]["words"][0] in body
    form, _t = read_form(body)
    assert form[f"s{traffic.pk}-suggestion_source"] == ["model"]
    # Traffic as suggested; health sent to the other unit than suggested.
    against = shown[health.pk]["suggestion"].unit
    form[f"unit_{health.pk}"] = [str((bureau.unit_b if against == bureau.unit_a else bureau.unit_a).pk)]
    client.post(url, form)
    taken = CaseEvent.objects.get(case=traffic, action="dispatch").payload["suggestion"]
    overridden = CaseEvent.objects.get(case=health, action="dispatch").payload["suggestion"]
    assert taken["taken"] is True and taken["source"] == "model" and taken["unit_id"] == bureau.unit_a.pk
    assert overridden["taken"] is False and overridden["unit_id"] == against.pk
    assert sum(r["offered"] for r in router_service.suggestion_acceptance()) == 2


def test_bulk_dispatch_keeps_the_choices_of_a_row_left_without_unit(bureau):
    first, second = bureau.register(), bureau.register()
    client = _client(bureau.dispatcher)
    page = client.post(reverse("admin:casework_case_changelist"),
                       {"action": "bulk_dispatch", "apply": "1", ACTION_CHECKBOX_NAME: [first.pk, second.pk],
                        f"unit_{first.pk}": bureau.unit_a.pk, f"unit_{second.pk}": "", "note": "请办理"})
    first.refresh_from_db()
    second.refresh_from_db()
    assert first.state == State.DISPATCHED and second.state == State.REGISTERED
    assert [r["case"].pk for r in page.context["rows"]] == [second.pk]
    assert page.context["rows"][0]["error"] and page.context["note"] == "请办理"


def test_bulk_dispatch_is_not_offered_to_handlers(bureau):
    page = _client(bureau.handler_a).get(reverse("admin:casework_case_changelist"))
    assert "bulk_dispatch" not in page.context["action_form"].fields["action"].choices.__repr__()
