"""The office answers for its own speed (快速批办, issue 13 §5).

The 交办 clock starts on every registration path and stops on every dispatch path; an
undispatched message climbs its own rungs through the real sweep; the office's and the leaders'
own rates are the same on the report, its drill-down, the xlsx and the dashboard.
"""

from datetime import datetime
from io import BytesIO, StringIO
import json
from zoneinfo import ZoneInfo

from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.core.management import call_command
from django.test import Client
from django.urls import reverse
import openpyxl
import pytest
import time_machine

from casework import escalation, importing, joint, services
from casework.importing import messages_import
from casework.models import (
    CaseClock,
    Clock,
    DeadlinePolicy,
    EscalationRung,
    EscalationStep,
    MessageType,
    Notification,
    State,
)
from tests.factories import make_user
from tests.test_import_batches import csv_text, row

SHANGHAI = ZoneInfo("Asia/Shanghai")


def bj(*args) -> datetime:
    return datetime(*args, tzinfo=SHANGHAI)


MONDAY_10 = bj(2026, 3, 2, 10, 0)


@pytest.fixture
def seeded(db):
    call_command("calendar_seed", "--from-year", "2025", "--to-year", "2026", stdout=StringIO(), stderr=StringIO())


def dispatch_clock(case, round=1):
    return CaseClock.objects.filter(case=case, clock=Clock.DISPATCH, round=round).first()


def assert_running(case, at=None):
    case.refresh_from_db()
    clock = dispatch_clock(case, case.handling_round)
    assert clock is not None and clock.stopped_at is None, case
    assert case.dispatch_due_at == clock.due_at and clock.unit_id is None
    if at is not None:
        assert clock.started_at == at
    return clock


def assert_stopped(case, round=1):
    clock = dispatch_clock(case, round)
    assert clock is not None and clock.stopped_at is not None, case
    return clock


# ---------------------------------------------------------------- the clock and its policy


def test_the_dispatch_clock_is_a_seeded_policy_and_has_its_own_rungs(db):
    assert set(DeadlinePolicy.objects.filter(clock=Clock.DISPATCH, platform__isnull=True)
               .values_list("message_type", "amount", "unit")) == {(mt, 1, "days") for mt in MessageType.values}
    urge, up = EscalationRung.objects.get(level="office_urge"), EscalationRung.objects.get(level="office_escalate")
    assert urge.clocks == [Clock.DISPATCH] and urge.threshold_days == 0 and urge.notify_unit_head
    assert up.requires == urge and up.notify_leaders and not (up.opens_notice or up.opens_referral)


def test_registration_starts_the_clock_on_every_path(bureau, seeded, client, settings, tmp_path):
    settings.CASEWORK_IMPORT_BATCH_SIZE = 3
    with time_machine.travel(MONDAY_10, tick=False):
        bureau.register()
        # manual entry in the admin
        client.force_login(bureau.dispatcher)
        response = client.post(reverse("admin:casework_case_add"), {
            "platform": bureau.platform.pk, "external_id": "MAN-1", "subject": "手工登记", "body": "正文",
            "submitted_at_0": "2026-03-02", "submitted_at_1": "09:00:00", "citizen_name": "", "citizen_contact": "",
            "message_type": MessageType.CONSULT, "category": "",
        })
        assert response.status_code == 302, response.content.decode()[:500]
        # a file import in batches (PostgreSQL: COPY) and a background job
        path = tmp_path / "m.csv"
        path.write_text(csv_text([row(f"F{i}") for i in range(7)]), encoding="utf-8")
        assert messages_import(rows_source=path, platform=bureau.platform, acting_user=bureau.dispatcher).created == 7
        job_path = tmp_path / "job.csv"
        job_path.write_text(csv_text([row("J1"), row("J2")]), encoding="utf-8")
        job = importing.import_job_create(platform=bureau.platform, acting_user=bureau.dispatcher,
                                          file_name="job.csv", stored_path=str(job_path))
        assert importing.import_job_run(job_id=job.pk).status == "done"
        # the platform push API
        import base64

        token = base64.b64encode(b"dispatcher:pw").decode()
        pushed = client.post(reverse("api_messages_push") + "?platform=wzxd", content_type="application/json",
                             data=json.dumps([{"message_id": "P1", "subject": "推送留言", "body": "正文",
                                               "submitted_at": "2026-03-02T09:00:00+08:00"}], ensure_ascii=False),
                             HTTP_AUTHORIZATION=f"Basic {token}")
        assert pushed.status_code in (200, 201), pushed.content
    from casework.models import Case

    cases = list(Case.objects.all())
    assert len(cases) == 1 + 1 + 7 + 2 + 1
    for case in cases:
        clock = assert_running(case, at=MONDAY_10)
        assert clock.due_at == bj(2026, 3, 3, 10, 0)  # one working day


def test_the_clock_counts_a_make_up_working_day(bureau, seeded):
    with time_machine.travel(bj(2026, 2, 27, 10, 0), tick=False):  # Friday; Saturday 02-28 is a 调休 workday
        case = bureau.register()
    assert assert_running(case).due_at == bj(2026, 2, 28, 10, 0)
    with time_machine.travel(bj(2026, 3, 6, 10, 0), tick=False):  # an ordinary Friday
        plain = bureau.register()
    assert assert_running(plain).due_at == bj(2026, 3, 9, 10, 0)  # the Monday


def test_every_office_decision_stops_the_clock(bureau, seeded):
    single = bureau.register()
    services.case_dispatch(case=single, acting_user=bureau.dispatcher, unit=bureau.unit_a)
    assert_stopped(single)
    rejected = bureau.case_in(State.ARCHIVED)
    assert_stopped(rejected)
    main, duplicate = bureau.register(), bureau.register()
    joint.case_merge(case=duplicate, into=main, acting_user=bureau.dispatcher)
    assert_stopped(duplicate)
    assert_running(main)
    # bulk dispatch from the case list
    first, second = bureau.register(), bureau.register()
    client = Client()
    client.force_login(bureau.dispatcher)
    url = reverse("admin:casework_case_changelist")
    client.post(url, {"action": "bulk_dispatch", "apply": "1", ACTION_CHECKBOX_NAME: [first.pk, second.pk],
                      f"unit_{first.pk}": bureau.unit_a.pk, f"unit_{second.pk}": bureau.unit_b.pk})
    assert_stopped(first) and assert_stopped(second)
    # a return starts it again in the new round; the ruling's re-dispatch stops it
    returned = bureau.case_in(State.DISPATCHED)
    services.case_return_to_office(case=returned, acting_user=bureau.handler_a, reason="不属本单位")
    assert_running(returned)
    assert returned.handling_round == 2
    joint.case_return_arbitrate(case=returned, acting_user=bureau.dispatcher, send_back=False, unit=bureau.unit_b)
    assert_stopped(returned, round=2)


def test_a_type_correction_recomputes_the_running_dispatch_clock(bureau, seeded):
    DeadlinePolicy.objects.filter(message_type=MessageType.COMPLAIN, clock=Clock.DISPATCH,
                                  platform__isnull=True).update(amount=2)
    with time_machine.travel(MONDAY_10, tick=False):
        case = bureau.register()
        assert assert_running(case).due_at == bj(2026, 3, 3, 10, 0)
        services.case_message_type_set(case=case, acting_user=bureau.dispatcher, message_type=MessageType.COMPLAIN,
                                       reason="实为投诉")
    clock = assert_running(case, at=MONDAY_10)
    assert clock.due_at == bj(2026, 3, 4, 10, 0) and clock.amount == 2


def test_the_case_list_marks_the_dispatch_clock_of_undispatched_cases(bureau, seeded):
    with time_machine.travel(MONDAY_10, tick=False):
        bureau.register()
    client = Client()
    client.force_login(bureau.dispatcher)
    with time_machine.travel(bj(2026, 3, 4, 9, 0), tick=False):
        html = client.get(reverse("admin:casework_case_changelist")).content.decode()
    assert "cw-clock cw-overdue" in html and "交办:已超期 1 个工作日" in html


# ---------------------------------------------------------------- the ladder, through the real sweep


def sweep_at(moment):
    """Run the real sweep at ``moment``; return the office rungs it took (the units' clocks run too)."""
    with time_machine.travel(moment, tick=False):
        taken = escalation.escalation_sweep()
    return {k: v for k, v in taken.items() if k.startswith("office_")}


def test_an_undispatched_message_climbs_to_the_office_head_and_the_leaders(bureau, seeded):
    head = make_user("wpb_head", unit=bureau.office, is_head=True)
    with time_machine.travel(MONDAY_10, tick=False):
        late = bureau.register()
        on_time = bureau.register()
    with time_machine.travel(bj(2026, 3, 3, 9, 0), tick=False):
        services.case_dispatch(case=on_time, acting_user=bureau.dispatcher, unit=bureau.unit_a)
    assert sweep_at(bj(2026, 3, 3, 9, 59)) == {}
    assert sweep_at(bj(2026, 3, 3, 10, 0)) == {"office_urge": 1}
    assert sweep_at(bj(2026, 3, 3, 10, 0)) == {}  # a second beat takes nothing twice
    step = EscalationStep.objects.get(case=late, level="office_urge")
    assert step.clock == Clock.DISPATCH and step.due_at == bj(2026, 3, 3, 10, 0)
    # One digest e-mail per recipient and rung (issue 11 §1): every recipient of the step's digests.
    mails = list(Notification.objects.filter(digest_lines__step=step).distinct())
    to = {address for m in mails for address in m.recipients}
    assert head.email in to and bureau.dispatcher.email in to
    mail = mails[0]
    assert bureau.handler_a.email not in to
    assert "未交办" in mail.subject and "网评办" in mail.body
    assert sweep_at(bj(2026, 3, 4, 9, 59)) == {}
    assert sweep_at(bj(2026, 3, 4, 10, 0)) == {"office_escalate": 1}
    up_step = EscalationStep.objects.get(case=late, level="office_escalate")
    up_to = {a for m in Notification.objects.filter(digest_lines__step=up_step).distinct() for a in m.recipients}
    assert bureau.leader.email in up_to and head.email in up_to
    assert not EscalationStep.objects.filter(case=on_time, clock=Clock.DISPATCH).exists()
    assert not late.supervision_notices.exists() and not late.referrals.exists()
    # dispatched late: the clock stops and the ladder stops with it
    with time_machine.travel(bj(2026, 3, 5, 9, 0), tick=False):
        services.case_dispatch(case=late, acting_user=bureau.dispatcher, unit=bureau.unit_a)
    assert sweep_at(bj(2026, 3, 30, 10, 0)).get("office_urge") is None
    assert EscalationStep.objects.filter(case=late, clock=Clock.DISPATCH).count() == 2


# ---------------------------------------------------------------- the rates, everywhere the same


AS_OF = bj(2026, 3, 10, 12, 0)
MARCH = {"start": "2026-03-01", "end": "2026-03-31", "as_of": AS_OF.isoformat()}


@pytest.fixture
def march(bureau, seeded):
    """A on time everywhere but tier 3; B dispatched late; C never dispatched; D not yet due."""
    with time_machine.travel(MONDAY_10, tick=False):
        a, b, c = bureau.register(), bureau.register(), bureau.register()
    with time_machine.travel(bj(2026, 3, 2, 15, 0), tick=False):
        services.case_dispatch(case=a, acting_user=bureau.dispatcher, unit=bureau.unit_a)
        services.case_accept(case=a, acting_user=bureau.handler_a)
    with time_machine.travel(bj(2026, 3, 3, 9, 0), tick=False):
        services.draft_save(case=a, acting_user=bureau.handler_a, handling_report="已核实", reply_text="您好。")
        services.case_submit_feedback(case=a, acting_user=bureau.handler_a)
    with time_machine.travel(bj(2026, 3, 3, 11, 0), tick=False):
        services.case_office_approve(case=a, acting_user=bureau.reviewer)
    with time_machine.travel(bj(2026, 3, 5, 11, 0), tick=False):  # due 03-04 11:00: late
        services.case_leader_approve(case=a, acting_user=bureau.leader)
    with time_machine.travel(bj(2026, 3, 4, 10, 0), tick=False):
        services.case_dispatch(case=b, acting_user=bureau.dispatcher, unit=bureau.unit_b)
    with time_machine.travel(bj(2026, 3, 10, 11, 0), tick=False):
        d = bureau.register()
    return {"a": a, "b": b, "c": c, "d": d}


def test_the_office_and_leaders_rates_and_their_drill_down(bureau, march):
    from assessment.facts import Period
    from assessment.office_metrics import office_figures, office_metric_case_ids

    period = Period.days(datetime(2026, 3, 1).date(), datetime(2026, 3, 31).date())
    figures = {f.key: f for f in office_figures(period=period, as_of=AS_OF)}
    office = figures["office"].values
    assert (office["dispatch_on_time"].num, office["dispatch_on_time"].den) == (1, 3)
    assert (office["office_review_on_time"].num, office["office_review_on_time"].den) == (1, 1)
    leaders = figures["leaders"].values["leader_review_on_time"]
    assert (leaders.num, leaders.den) == (0, 1)
    assert figures[f"leader:{bureau.leader.pk}"].values["leader_review_on_time"].den == 1
    assert figures["office"].small("dispatch_on_time")  # 3 < MIN_VOLUME
    ids = {k: v.pk for k, v in march.items()}
    assert office_metric_case_ids(period=period, metric="dispatch_on_time", part="den", who="office",
                                  as_of=AS_OF) == sorted([ids["a"], ids["b"], ids["c"]])
    assert office_metric_case_ids(period=period, metric="dispatch_on_time", part="num", who="office",
                                  as_of=AS_OF) == [ids["a"]]
    assert office_metric_case_ids(period=period, metric="leader_review_on_time", part="num", who="leaders",
                                  as_of=AS_OF) == []
    # read as of an earlier moment, C was not yet late: the denominator is what was known then
    early = {f.key: f for f in office_figures(period=period, as_of=bj(2026, 3, 2, 16, 0))}
    assert (early["office"].values["dispatch_on_time"].num, early["office"].values["dispatch_on_time"].den) == (1, 1)


def test_report_drill_down_export_and_dashboard_agree(bureau, march):
    client = Client()
    client.force_login(bureau.reviewer)  # city-wide: reads every unit
    html = client.get(reverse("assessment:report"), MARCH).content.decode()
    assert 'id="office-table"' in html and "按时交办率" in html and "样本不足" in html
    import re

    def cell(who, metric):
        row = re.search(rf'<tr data-who="{re.escape(who)}">(.*?)</tr>', html, re.S).group(1)
        m = re.search(rf'data-metric="{metric}" data-num="(\d+)" data-den="(\d+)"', row)
        return int(m.group(1)), int(m.group(2))

    report = {("office", "dispatch_on_time"): cell("office", "dispatch_on_time"),
              ("office", "office_review_on_time"): cell("office", "office_review_on_time"),
              ("leaders", "leader_review_on_time"): cell("leaders", "leader_review_on_time")}
    assert report[("office", "dispatch_on_time")] == (1, 3)
    for (who, metric), (num, den) in report.items():
        for part, expected in (("den", den), ("num", num)):
            page = client.get(reverse("assessment:report_cases"), {**MARCH, "metric": metric, "who": who, "part": part})
            assert page.status_code == 200 and page.context["total"] == expected, (who, metric, part)
    # the xlsx
    book = openpyxl.load_workbook(BytesIO(client.get(reverse("assessment:report_export"), MARCH).content))
    sheet = book["网评办与局领导"]
    rows = {r[0]: r for r in sheet.iter_rows(min_row=2, values_only=True)}
    assert rows["网评办"][2] == "1/3" and rows["网评办"][4] == "1/1" and rows["局领导(合计)"][6] == "0/1"
    assert "按时交办率" in [c.value for c in book["口径说明"]["A"]]
    # the dashboard, month by month, at the same report time
    data = client.get(reverse("assessment:dashboard_data"), {"as_of": AS_OF.isoformat()}).json()
    month = next(m for m in data["office_by_month"] if m["month"] == "2026-03")
    by_key = {r["key"]: r for r in month["rows"]}
    for (who, metric), (num, den) in report.items():
        assert (by_key[who][metric]["num"], by_key[who][metric]["den"]) == (num, den)
    assert by_key["office"]["dispatch_on_time"]["small"] is True
    assert "dispatch_on_time" in data["definitions"]


def test_only_readers_of_every_unit_get_the_office_figures(bureau, march):
    client = Client()
    client.force_login(bureau.handler_a)
    assert 'id="office-table"' not in client.get(reverse("assessment:report"), MARCH).content.decode()
    assert client.get(reverse("assessment:report_cases"),
                      {**MARCH, "metric": "dispatch_on_time", "who": "office"}).status_code == 403
    assert client.get(reverse("assessment:dashboard_data")).json()["office_by_month"] == []
    client.force_login(bureau.reviewer)
    for who in ("nobody", "leader:x", "leader:99999999999999999999", "leader:", "office\x00"):
        assert client.get(reverse("assessment:report_cases"),
                          {**MARCH, "metric": "dispatch_on_time", "who": who}).status_code == 400, who
    for part in ("num", "den"):
        assert client.get(reverse("assessment:report_export"),
                          {**MARCH, "metric": "leader_review_on_time", "who": "leaders", "part": part}).status_code == 200


def test_cases_registered_before_the_clock_existed_get_it_once(bureau, seeded):
    with time_machine.travel(MONDAY_10, tick=False):
        old = bureau.register()
    CaseClock.objects.filter(case=old).delete()
    from casework.models import Case

    Case.objects.filter(pk=old.pk).update(dispatch_due_at=None)
    with time_machine.travel(bj(2026, 3, 5, 10, 0), tick=False):
        out = StringIO()
        call_command("dispatch_clocks_start", stdout=out)
        call_command("dispatch_clocks_start", stdout=StringIO())  # again: nothing more
    assert "1" in out.getvalue()
    assert CaseClock.objects.filter(case=old, clock=Clock.DISPATCH).count() == 1
    assert assert_running(old, at=bj(2026, 3, 5, 10, 0)).due_at == bj(2026, 3, 6, 10, 0)


@pytest.mark.parametrize("rows", [3, 12])
def test_the_batch_path_starts_its_clocks_in_a_constant_number_of_statements(bureau, seeded, settings, tmp_path, rows):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    settings.CASEWORK_IMPORT_BATCH_SIZE = 50
    path = tmp_path / "b.csv"
    path.write_text(csv_text([row(f"B{i}") for i in range(rows)]), encoding="utf-8")
    with CaptureQueriesContext(connection) as queries:
        assert messages_import(rows_source=path, platform=bureau.platform).created == rows
    clock_writes = [q for q in queries.captured_queries
                    if "casework_caseclock" in q["sql"] and q["sql"].lstrip().upper().startswith("INSERT")]
    # One INSERT on SQLite; on PostgreSQL one COPY, which Django's query log does not see.
    assert len(clock_writes) == (0 if connection.vendor == "postgresql" else 1)
    assert CaseClock.objects.filter(clock=Clock.DISPATCH, stopped_at__isnull=True).count() == rows
