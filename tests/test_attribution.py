"""A unit answers only for what was its own (issue 8 §3, issue 10 §8).

Hand-built timelines through the services, in March 2026 (no holidays; a consultation has 1 working
day to sign for and 3 to reply). They check that 督办单, referrals and every assessment figure
follow the unit responsible at the time across a return, a re-dispatch, a merge and a co-unit;
that the report, the drill-down, the xlsx export and the dashboard give the same figures for the
same period and reader; that a leader and a unit's own staff get, for their units, the figures a
superuser gets; and that a unit's own day off moves its escalation as it moved its deadline.
"""

import csv
from datetime import date, datetime
import gzip
from io import BytesIO, StringIO
from zoneinfo import ZoneInfo

from django.core.management import call_command
from django.urls import reverse
from openpyxl import load_workbook
import pytest
import time_machine

from accounts.models import User
from assessment.facts import Period
from assessment.office_metrics import OFFICE_METRIC_DEFINITIONS
from assessment.selectors import (
    COUNT_METRICS,
    DASHBOARD_RATES,
    METRIC_DEFINITIONS,
    METRIC_LABELS,
    RATE_METRICS,
    Mean,
    Ratio,
    assessment_annual,
    assessment_figures,
    assessment_scope_unit_ids,
    dashboard_data,
)
from casework import escalation, joint, selectors, services
from casework.models import (
    CaseEvent,
    DisciplineReferral,
    EscalationStep,
    Notification,
    SupervisionNotice,
    UnitCalendarDay,
)

SH = ZoneInfo("Asia/Shanghai")
MARCH = Period.days(date(2026, 3, 1), date(2026, 3, 31))
AS_OF = datetime(2026, 4, 30, 18, 0, tzinfo=SH)
MONTH_QUERY = "start=2026-03-01&end=2026-03-31"


def t(m, d, h=10, mi=0):
    return datetime(2026, m, d, h, mi, tzinfo=SH)


def step(when, fn, **kw):
    with time_machine.travel(when, tick=False):
        return fn(**kw)


def sweep(when):
    with time_machine.travel(when, tick=False):
        return escalation.escalation_sweep()


@pytest.fixture
def seeded(db):
    call_command("calendar_seed", "--from-year", "2026", "--to-year", "2026", stdout=StringIO(),
                 stderr=StringIO())


def dispatched(b, when, unit, **kw):
    case = step(when, b.register, submitted_at=when)
    return step(when, services.case_dispatch, case=case, acting_user=b.dispatcher, unit=unit, **kw)


def handler(b, unit):
    return b.handler_a if unit == b.unit_a else b.handler_b


def finish(b, case, unit, *, feedback, publish, publish_at=None):
    h = handler(b, unit)
    step(feedback, services.draft_save, case=case, acting_user=h, handling_report="已核实",
         reply_text="您好,已核实处理。")
    case = step(feedback, services.case_submit_feedback, case=case, acting_user=h)
    case = step(feedback.replace(hour=16), services.case_office_approve, case=case, acting_user=b.reviewer)
    case = step(feedback.replace(hour=17), services.case_leader_approve, case=case, acting_user=b.leader)
    kw = {"at": publish_at} if publish_at else {}
    return step(publish, services.case_publish_reply, case=case, acting_user=b.dispatcher, where="问政西地省", **kw)


def return_and_redispatch(b, case, *, returned, redispatched, to):
    case = step(returned, services.case_return_to_office, case=case, acting_user=b.handler_a,
                reason="不属于本单位管辖")
    return step(redispatched, joint.case_return_arbitrate, case=case, acting_user=b.dispatcher,
                send_back=False, unit=to)


# ---------------------------------------------------------------------------- 督办单 across a return


def test_a_notice_left_behind_on_a_returned_case_is_closed_and_never_refers_another_case(bureau, seeded, client):
    b = bureau
    # C1: dispatched to A, not signed for: the 督办单 of the sign-for clock goes to A on Tue 10:01.
    c1 = dispatched(b, t(3, 2), b.unit_a)
    # C2: A's case in handling, reply due Thu 3/5 10:00: its 督办单 goes to A then.
    c2 = dispatched(b, t(3, 2), b.unit_a)
    c2 = step(t(3, 2, 11), services.case_accept, case=c2, acting_user=b.handler_a)
    assert sweep(t(3, 3, 10, 1)).get("urge") == 1
    n1 = SupervisionNotice.objects.get(case=c1)
    assert n1.unit == b.unit_a
    # A returns C1; the office re-dispatches it to B. A no longer answers for C1.
    c1 = return_and_redispatch(b, c1, returned=t(3, 3, 11), redispatched=t(3, 3, 14), to=b.unit_b)
    n1.refresh_from_db()
    assert n1.closed_at == t(3, 3, 11) and n1.closed_reason == "案件已退回网评办"
    assert CaseEvent.objects.filter(case=c1, action="supervision_closed", payload__notice_id=n1.pk).exists()
    assert not selectors.notices_awaiting_answer().filter(pk=n1.pk).exists()
    with pytest.raises(escalation.NoticeAnswerRefused, match="已终止"):
        escalation.supervision_notice_answer(notice=n1, acting_user=b.handler_a, answer="已签收")

    sweep(t(3, 5, 10, 1))
    n2 = SupervisionNotice.objects.get(case=c2)
    assert list(selectors.notices_for_unit_staff(user=b.handler_a)) == [n2]
    # Two working days after N2, A has one notice awaiting its answer, not two: no referral.
    taken = sweep(t(3, 9, 10, 5))
    assert "refer" not in taken
    assert not DisciplineReferral.objects.filter(unit=b.unit_a).exists()

    # Both notices stay in A's 督办单 figure for March (opened while A held the cases); B's figure
    # holds only the two B earned itself on C1 (sign-for and reply overdue in its round).
    figures = assessment_figures(period=MARCH, as_of=t(3, 31, 18))
    assert figures["supervision_notices"] == {b.unit_a.pk: 2, b.unit_b.pk: 2}
    assert set(SupervisionNotice.objects.filter(unit=b.unit_b).values_list("case_id", flat=True)) == {c1.pk}

    # The notice list: B's staff see C1's notice as closed, with no answer link; A's staff no
    # longer see it (the case is B's) and its answer page does not exist for them.
    client.force_login(b.handler_b)
    page = client.get(reverse("admin:casework_supervisionnotice_changelist") + "?status=closed").content.decode()
    assert c1.reference in page and "已终止" in page
    page = client.get(reverse("admin:casework_supervisionnotice_change", args=[n1.pk])).content.decode()
    assert "答复督办单</a>" not in page
    page = client.get(reverse("admin:casework_case_change", args=[c1.pk])).content.decode()
    assert "已终止:案件已退回网评办" in page
    assert reverse("admin:casework_supervisionnotice_answer", args=[n1.pk]) not in page
    client.force_login(b.handler_a)
    assert client.get(reverse("admin:casework_supervisionnotice_answer", args=[n1.pk])).status_code == 404
    # A's tile counts the one notice A can open and answer.
    with time_machine.travel(t(3, 9, 11), tick=False):
        page = client.get(reverse("admin:index")).content.decode()
    assert 'data-count="1"' in page.split('id="cw-queue-unit-notices"')[1][:300]
    page = client.get(reverse("admin:casework_supervisionnotice_changelist") + "?status=awaiting").content.decode()
    assert c2.reference in page and c1.reference not in page


def test_two_open_notices_of_a_unit_still_refer_its_cases(bureau, seeded):
    """The counter-check: the rung still fires when the unit holds both cases."""
    b = bureau
    cases = [step(t(3, 2, 11), services.case_accept, case=dispatched(b, t(3, 2), b.unit_a),
                  acting_user=b.handler_a) for _ in range(2)]
    sweep(t(3, 5, 10, 1))
    assert sweep(t(3, 9, 10, 5)) == {"refer": 2}
    assert {r.case_id for r in DisciplineReferral.objects.all()} == {c.pk for c in cases}


def test_a_co_unit_answers_no_notice_and_carries_no_figure_of_the_lead_unit(bureau, seeded):
    b = bureau
    case = dispatched(b, t(3, 2), b.unit_a)
    case = step(t(3, 2, 11), services.case_accept, case=case, acting_user=b.handler_a)
    step(t(3, 2, 12), joint.co_unit_assign, case=case, acting_user=b.dispatcher, unit=b.unit_b,
         task="请协助核查", working_days=1)
    sweep(t(3, 5, 10, 1))
    notice = SupervisionNotice.objects.get(case=case)
    assert notice.unit == b.unit_a
    assert selectors.user_can_see_case(user=b.handler_b, case=case)  # the co-unit sees the case
    assert not selectors.notices_for_unit_staff(user=b.handler_b).exists()
    with pytest.raises(Exception, match="只有被督办单位"):
        escalation.supervision_notice_answer(notice=notice, acting_user=b.handler_b, answer="协办已报告")
    scope_b = assessment_scope_unit_ids(user=b.handler_b)
    assert scope_b == [b.unit_b.pk]
    figures = assessment_figures(period=MARCH, unit_ids=scope_b, as_of=t(3, 31, 18))
    assert all(not values for values in figures.values())


# ---------------------------------------------------------------------------- one computation, every surface


class Timeline:
    """Seven messages of March 2026 for 雨湖分局 (A) and 岳塘分局 (B), worked out by hand below.

    c1  A: signed, answered and published on time (3 working days), rated 满意.
    c2  A returned it within 2 hours; re-dispatched to B, answered on time, published 3/9 (4 days).
    c3  A: dispatch recorded on 4/10 with the effective time 3/10; never signed: late twice.
    c4  A: published on 3/18 15:00, recorded on 3/20: 2 working days, not 4.
    c5  A with co-unit B: answered on time, published 3/26 (3 days).
    c6  a duplicate merged into c1 (never dispatched, not visible to A's staff).
    c7  A did not sign for it: 督办单 to A, then A returned it; B signed and let it run late.
    """

    def __init__(self, b):
        self.b = b
        A, B = b.unit_a, b.unit_b
        self.c1 = dispatched(b, t(3, 2), A)
        self.c7 = dispatched(b, t(3, 2), A)
        self.c2 = dispatched(b, t(3, 2), A)
        self.c1 = step(t(3, 2, 15), services.case_accept, case=self.c1, acting_user=b.handler_a)
        self.c2 = return_and_redispatch(b, self.c2, returned=t(3, 2, 12), redispatched=t(3, 3, 9), to=B)
        self.c2 = step(t(3, 3, 9, 30), services.case_accept, case=self.c2, acting_user=b.handler_b)
        sweep(t(3, 3, 10, 1))  # C7's sign-for deadline passed: 督办单 to A
        self.c7 = return_and_redispatch(b, self.c7, returned=t(3, 3, 11), redispatched=t(3, 3, 14), to=B)
        self.c7 = step(t(3, 3, 15), services.case_accept, case=self.c7, acting_user=b.handler_b)
        self.c6 = step(t(3, 3, 16), b.register, submitted_at=t(3, 3, 16))
        step(t(3, 3, 16, 30), joint.case_merge, case=self.c6, into=self.c1, acting_user=b.dispatcher,
             reason="同一网民重复留言")
        self.c1 = finish(b, self.c1, A, feedback=t(3, 4), publish=t(3, 5, 9))
        step(t(3, 6), services.case_record_follow_up, case=self.c1, acting_user=b.dispatcher, result="satisfied")
        self.c2 = finish(b, self.c2, B, feedback=t(3, 5), publish=t(3, 9))
        self.c4 = dispatched(b, t(3, 16), A)
        self.c4 = step(t(3, 16, 11), services.case_accept, case=self.c4, acting_user=b.handler_a)
        self.c4 = finish(b, self.c4, A, feedback=t(3, 17), publish=t(3, 20), publish_at=t(3, 18, 15))
        self.c5 = dispatched(b, t(3, 23), A)
        self.c5 = step(t(3, 23, 11), services.case_accept, case=self.c5, acting_user=b.handler_a)
        task = step(t(3, 23, 12), joint.co_unit_assign, case=self.c5, acting_user=b.dispatcher, unit=B,
                    task="请协助核查", working_days=1)
        step(t(3, 24), joint.co_unit_report, task=task, acting_user=b.handler_b, report="已核查")
        self.c5 = finish(b, self.c5, A, feedback=t(3, 25), publish=t(3, 26, 9))
        # C3: registered and dispatched on 4/10, effective 3/10 (carried over from paper).
        case = step(t(4, 10), b.register, submitted_at=t(3, 10, 9))
        self.c3 = step(t(4, 10), services.case_dispatch, case=case, acting_user=b.dispatcher, unit=A,
                       at=t(3, 10))


EXPECTED = {  # (unit, metric): (num, den) or Mean(total, count) or count — worked out by hand
    ("a", "sign_for_on_time"): (3, 4),   # c1, c4, c5 on time; c3 unsigned past 3/11; c2, c7 returned
    ("a", "handled_on_time"): (3, 4),    # c1, c4, c5 on time; c3 late; returned rounds left out
    ("a", "return_rate"): (2, 6),        # c2, c7 of six dispatches (c3 counted in March)
    ("a", "send_back_rate"): (0, 3),
    ("a", "satisfaction"): (1, 1),
    ("a", "reply_working_days"): (8, 3),  # c1 3 + c4 2 + c5 3
    ("a", "supervision_notices"): 1,
    ("b", "sign_for_on_time"): (2, 2),
    ("b", "handled_on_time"): (1, 2),    # c2 on time, c7 past 3/6 14:00 without feedback
    ("b", "return_rate"): (0, 2),
    ("b", "send_back_rate"): (0, 1),
    ("b", "reply_working_days"): (4, 1),
}


def pair(value):
    if isinstance(value, Ratio):
        return (value.num, value.den)
    if isinstance(value, Mean):
        return (value.total, value.count)
    return value


@pytest.fixture
def timeline(bureau, seeded):
    return Timeline(bureau)


@pytest.fixture
def superuser(db):
    return User.objects.create_superuser(username="root", password="pw", email="root@bureau.invalid")


def truth(b):
    figures = assessment_figures(period=MARCH, as_of=AS_OF)
    units = {"a": b.unit_a.pk, "b": b.unit_b.pk}
    return {(k, m): pair(figures[m][uid]) for k, uid in units.items() for m in figures if uid in figures[m]}


def test_the_figures_are_the_ones_worked_out_by_hand(timeline, bureau):
    got = truth(bureau)
    for key, expected in EXPECTED.items():
        assert got[key] == expected, key
    assert ("b", "supervision_notices") not in got and ("b", "satisfaction") not in got


def report_figures(client, units):
    response = client.get(reverse("assessment:report") + "?" + MONTH_QUERY)
    assert response.status_code == 200
    page = response.content.decode()
    for name in METRIC_DEFINITIONS:
        assert str(METRIC_DEFINITIONS[name]) in page  # every figure explained on the page
    out, ranks = {}, {}
    columns = [n for n, _label in response.context["columns"]]
    for item in response.context["table"]:
        for key, uid in units.items():
            if item["row"].unit.pk != uid:
                continue
            ranks[key] = (item["row"].rank, item["row"].small)
            for name, cell in zip(columns, item["cells"], strict=True):
                if cell.get("value") is None:
                    continue
                if name in COUNT_METRICS:
                    out[(key, name)] = cell["num"]
                elif name == "reply_working_days":
                    out[(key, name)] = (round(cell["value"] * cell["den"], 6), cell["den"])
                else:
                    out[(key, name)] = (cell["num"], cell["den"])
    return out, ranks


def drill_figures(client, units, expected):
    out = {}
    for (key, name), value in expected.items():
        if key not in units:
            continue
        base = reverse("assessment:report_cases") + f"?{MONTH_QUERY}&metric={name}&unit={units[key]}"
        den = client.get(base + "&part=den").context["total"]
        if name in COUNT_METRICS:
            out[(key, name)] = den
        elif name == "reply_working_days":
            out[(key, name)] = (value[0], den)  # the drill-down lists the publications counted
        else:
            out[(key, name)] = (client.get(base + "&part=num").context["total"], den)
    return out


def xlsx_figures(client, units, names):
    response = client.get(reverse("assessment:report_export") + "?" + MONTH_QUERY)
    ws = load_workbook(BytesIO(response.content))["年度考核"]
    header = [c.value for c in ws[4]]
    out = {}
    for row in ws.iter_rows(min_row=5, values_only=True):
        for key in units:
            if row[1] != names[key]:
                continue
            for name in RATE_METRICS:
                cell = row[header.index(f"{METRIC_LABELS[name]}(分子/分母)")]
                if cell:
                    out[(key, name)] = tuple(int(x) for x in cell.split("/"))
            for name in ("reply_working_days", "supervision_notices"):
                value = row[header.index(METRIC_LABELS[name])]
                if value:
                    out[(key, name)] = value
    return out


def dashboard_figures(client):
    data = client.get(reverse("assessment:dashboard_data")).json()
    march = next(m for m in data["rates_by_month"] if m["month"] == "2026-03")
    assert (march["start"], march["end"]) == ("2026-03-01", "2026-03-31")
    return {name: march[name] for name in DASHBOARD_RATES}, data


@pytest.mark.parametrize("reader", ["superuser", "leader", "handler_a", "handler_b"])
def test_report_drill_down_xlsx_and_dashboard_give_the_same_figures_for_each_reader(
        timeline, bureau, superuser, client, reader):
    b = bureau
    user = superuser if reader == "superuser" else getattr(b, reader)
    units = {"handler_a": {"a": b.unit_a.pk}, "handler_b": {"b": b.unit_b.pk}}.get(
        reader, {"a": b.unit_a.pk, "b": b.unit_b.pk})
    expected = {k: v for k, v in EXPECTED.items() if k[0] in units}
    client.force_login(user)
    with time_machine.travel(AS_OF, tick=False):
        report, ranks = report_figures(client, units)
        drill = drill_figures(client, units, expected)
        xlsx = xlsx_figures(client, units, {"a": b.unit_a.name, "b": b.unit_b.name})
        dash, data = dashboard_figures(client)
    # The report, as every reader sees it, equals the figures worked out by hand (and a superuser's).
    assert report == {k: v for k, v in truth(b).items() if k[0] in units}
    assert {k: report[k] for k in expected} == expected
    # The drill-down lists as many cases as the figure counts (hidden ones counted, not listed).
    assert drill == expected
    # The xlsx holds the same numerators and denominators, means and counts.
    for (key, name), value in expected.items():
        if name == "reply_working_days":
            assert xlsx[(key, name)] == round(value[0] / value[1], 2)
        else:
            assert xlsx[(key, name)] == value, (key, name)
    # The dashboard's March is the report's March, summed over the reader's units.
    for name in DASHBOARD_RATES:
        parts = [expected.get((key, name)) for key in units]
        parts = [p for p in parts if p]
        if not parts:
            assert dash[name] is None, name
            continue
        num, den = sum(p[0] for p in parts), sum(p[1] for p in parts)
        assert (dash[name]["num"], dash[name]["den"]) == (num, den), name
        assert dash[name]["small"] == (den < 5)
    # The units' definitions, and for readers of every unit the office's and leaders' own (issue 13 §5).
    assert set(METRIC_DEFINITIONS) <= set(data["definitions"])
    assert set(data["definitions"]) - set(METRIC_DEFINITIONS) <= set(OFFICE_METRIC_DEFINITIONS)
    # B has two dispatches: marked and ranked after A, whatever its score.
    if "b" in ranks:
        assert ranks["b"][1] is True
    if "a" in ranks and "b" in ranks:
        assert ranks["a"][0] < ranks["b"][0]


def test_a_units_own_staff_see_its_returns_and_a_late_recorded_dispatch(timeline, bureau):
    """The two faults of the example: 0% 回退率 for unit staff, an empty report for a leader."""
    b = bureau
    for user in (b.handler_a, b.leader):
        figures = assessment_figures(period=MARCH, unit_ids=assessment_scope_unit_ids(user=user), as_of=AS_OF)
        assert pair(figures["return_rate"][b.unit_a.pk]) == (2, 6)
        c3_counted = pair(figures["sign_for_on_time"][b.unit_a.pk])
        assert c3_counted == (3, 4)
    rows = assessment_annual(period=MARCH, unit_ids=assessment_scope_unit_ids(user=b.handler_a), as_of=AS_OF)
    assert [r.unit for r in rows] == [b.unit_a]


def test_the_publish_event_records_the_effective_time(timeline):
    event = CaseEvent.objects.get(case=timeline.c4, action="publish_reply")
    assert event.at == t(3, 20)
    assert datetime.fromisoformat(event.payload["published_at"]) == t(3, 18, 15)
    timeline.c4.refresh_from_db()
    assert timeline.c4.published_at == t(3, 18, 15)


def test_a_merged_case_shows_only_the_duplicates_the_reader_may_open(timeline, bureau, client):
    b = bureau
    url = reverse("admin:casework_case_change", args=[timeline.c1.pk])
    dup_url = reverse("admin:casework_case_change", args=[timeline.c6.pk])
    client.force_login(b.handler_a)
    page = client.get(url).content.decode()
    assert timeline.c6.reference not in page and dup_url not in page
    assert "另有 1 件不在您的查看范围内" in page
    assert client.get(dup_url).status_code == 404
    client.force_login(b.dispatcher)
    page = client.get(url).content.decode()
    assert dup_url in page and "不在您的查看范围内" not in page
    page = client.get(dup_url).content.decode()
    assert url in page  # the main case, which the dispatcher may open


def test_the_drill_down_counts_the_cases_a_reader_may_not_open(timeline, bureau, client):
    b = bureau
    client.force_login(b.handler_a)
    with time_machine.travel(AS_OF, tick=False):
        response = client.get(reverse("assessment:report_cases") +
                              f"?{MONTH_QUERY}&metric=return_rate&part=num&unit={b.unit_a.pk}")
    assert response.context["total"] == 2 and response.context["hidden"] == 2
    page = response.content.decode()
    assert "另有 2 件不在您的查看范围内" in page
    assert timeline.c2.reference not in page and timeline.c7.reference not in page


def test_the_dashboard_window_is_the_readers_choice(timeline, bureau, client):
    b = bureau
    data = dashboard_data(user=b.leader, now=AS_OF)
    # Not the week of the newest message (3/10): the current week, Mon 4/27 – Sun 5/3.
    assert (data["window"]["start"], data["window"]["end"]) == ("2026-02-09", "2026-05-03")
    data = dashboard_data(user=b.leader, now=AS_OF, weeks=4, end=date(2026, 3, 11))
    assert (data["window"]["start"], data["window"]["end"]) == ("2026-02-16", "2026-03-15")
    assert data["window"]["previous"] == "2026-02-15" and data["window"]["next"] == "2026-03-22"
    assert sum(w["count"] for w in data["volume_by_week"]) == 5  # c1, c2, c6, c7 (3/2–3/3) and c3 (3/10)
    client.force_login(b.leader)
    with time_machine.travel(AS_OF, tick=False):
        got = client.get(reverse("assessment:dashboard_data") + "?end=2026-03-11&weeks=4").json()
        assert got["window"]["end"] == "2026-03-15"
        assert client.get(reverse("assessment:dashboard_data") + "?end=yesterday").status_code == 400


# ---------------------------------------------------------------------------- a unit's own day off


def test_a_units_own_day_off_moves_its_escalation_late_text_and_reply_days(bureau, seeded):
    b = bureau
    UnitCalendarDay.objects.create(unit=b.unit_a, date=date(2026, 3, 9), is_workday=False)
    cases = {}
    for unit in (b.unit_a, b.unit_b):
        case = dispatched(b, t(3, 2), unit)
        cases[unit.code] = step(t(3, 2, 11), services.case_accept, case=case, acting_user=handler(b, unit))
    a, bb = cases[b.unit_a.code], cases[b.unit_b.code]
    assert a.reply_due_at == bb.reply_due_at == t(3, 5)  # the day off is after the deadline
    sweep(t(3, 5, 10, 1))
    # +3 working days: Tue 3/10 for B; for A, whose Monday 3/9 is off, Wed 3/11.
    sweep(t(3, 10, 10, 1))
    assert EscalationStep.objects.filter(case=bb, level="escalate").exists()
    assert not EscalationStep.objects.filter(case=a, level="escalate").exists()
    sweep(t(3, 11, 10, 1))
    step_a = EscalationStep.objects.get(case=a, level="escalate")
    assert step_a.happened_at == t(3, 11, 10, 1)
    mail = Notification.objects.get(digest_lines__step=step_a)
    assert "已超期 3 个工作日" in mail.body  # 3/6, 3/10, 3/11 on A's calendar (4 on the bureau's)
    # The unit's time to reply is counted on its calendar too: 3/6 → 3/10 is 1 working day for A.
    c = dispatched(b, t(3, 6), b.unit_a)
    c = step(t(3, 6, 11), services.case_accept, case=c, acting_user=b.handler_a)
    finish(b, c, b.unit_a, feedback=t(3, 6, 14), publish=t(3, 10))
    figures = assessment_figures(period=Period.days(date(2026, 3, 10), date(2026, 3, 10)), as_of=t(3, 31))
    assert pair(figures["reply_working_days"][b.unit_a.pk]) == (1, 1)


def test_a_units_own_day_off_moves_when_its_notices_count_as_unanswered(bureau, seeded):
    b = bureau
    UnitCalendarDay.objects.create(unit=b.unit_a, date=date(2026, 3, 9), is_workday=False)
    for _ in range(2):
        step(t(3, 2, 11), services.case_accept, case=dispatched(b, t(3, 2), b.unit_a), acting_user=b.handler_a)
    sweep(t(3, 5, 10, 1))
    # Two working days after Thu 3/5 10:01: Mon 3/9 for the bureau, Tue 3/10 for A.
    assert "refer" not in sweep(t(3, 9, 10, 5))
    assert sweep(t(3, 10, 10, 5)).get("refer") == 2
    assert {r.trigger for r in DisciplineReferral.objects.all()} == {"unit_notices"}


def test_the_replay_counts_a_units_messages_on_its_own_calendar(bureau, tmp_path):
    path = tmp_path / "one.csv.gz"
    with gzip.open(path, "wt", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["message_id", "subject", "body", "submitted_at", "replied_at"])
        writer.writeheader()
        # A consultation submitted Mon 2019-03-04 10:00: due Thu 03-07 10:00; replied Thu 15:00.
        writer.writerow({"message_id": 1, "subject": "咨询户口", "body": "请问", "submitted_at": "2019-03-04T10:00:00",
                         "replied_at": "2019-03-07T15:00:00"})
    out = StringIO()
    call_command("replay_deadlines", str(path), stdout=out)
    assert "按时答复:0 条" in out.getvalue()
    # Unit A's own day off on Wed 03-06 moves its deadline to Fri 03-08: on time on its calendar.
    UnitCalendarDay.objects.create(unit=bureau.unit_a, date=date(2019, 3, 6), is_workday=False)
    out = StringIO()
    call_command("replay_deadlines", str(path), "--unit", bureau.unit_a.code, stdout=out)
    assert "按时答复:1 条" in out.getvalue()
    out = StringIO()
    call_command("replay_deadlines", str(path), "--unit", bureau.unit_b.code, stdout=out)
    assert "按时答复:0 条" in out.getvalue()
