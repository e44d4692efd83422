"""Assessment metrics on a hand-built timeline (DESIGN.md §7), with the edge cases decided in
assessment.selectors: a case dispatched in one period and answered in the next, a returned case,
an approved extension and an unreachable citizen. Expected values are worked out by hand below.

Calendar: March 2026 has no holidays; a consultation has 1 working day to sign for and 3 to reply.
"""

from datetime import date, datetime
from zoneinfo import ZoneInfo

import pytest
import time_machine

from assessment.facts import AssessmentFacts, Period
from assessment.selectors import (
    metric_case_ids,
    metric_extensions,
    metric_handled_on_time,
    metric_referrals,
    metric_reply_working_days,
    metric_return_rate,
    metric_satisfaction,
    metric_send_back_rate,
    metric_sign_for_on_time,
    metric_supervision_notices,
)
from casework import joint, services
from casework.models import SupervisionNotice

SH = ZoneInfo("Asia/Shanghai")
MARCH = Period.days(date(2026, 3, 1), date(2026, 3, 31))
APRIL = Period.days(date(2026, 4, 1), date(2026, 4, 30))
AS_OF = datetime(2026, 4, 30, 18, 0, tzinfo=SH)


def t(m, d, h=10, mi=0):
    return datetime(2026, m, d, h, mi, tzinfo=SH)


def step(when, fn, **kw):
    with time_machine.travel(when, tick=False):
        return fn(**kw)


class Timeline:
    """Five cases of 雨湖分局 (A) and one re-dispatched to 岳塘分局 (B); see the module docstring."""

    def __init__(self, b):
        self.b = b
        self.c1 = self.answered(dispatch=t(3, 2), accept=t(3, 2, 15), feedback=t(3, 4), publish=t(3, 5),
                                follow_ups=[(t(3, 6), "satisfied")])
        self.c2 = self.answered(dispatch=t(3, 2), accept=t(3, 4, 9), feedback=t(3, 10), send_back=t(3, 10, 15),
                                feedback2=t(3, 11), publish=t(3, 12),
                                follow_ups=[(t(3, 13), "unreachable"), (t(3, 16), "basically_satisfied")])
        self.c5 = self.answered(dispatch=t(2, 26), accept=t(2, 26, 11), feedback=t(3, 4), publish=t(3, 5),
                                follow_ups=[(t(3, 6), "unsatisfied")])
        # C3: dispatched to A, returned the same day, re-dispatched to B and signed on time.
        self.c3 = self.dispatched(t(3, 2))
        self.c3 = step(t(3, 2, 12), services.case_return_to_office, case=self.c3, acting_user=b.handler_a,
                       reason="不属于本单位管辖")
        self.c3 = step(t(3, 3), services.case_dispatch, case=self.c3, acting_user=b.dispatcher, unit=b.unit_b)
        self.c3 = step(t(3, 3, 11), services.case_accept, case=self.c3, acting_user=b.handler_b)
        # C4: dispatched Friday 27 March, signed Monday before 10:00; reply due Wed 1 April,
        # extended by 2 working days (approved 31 March) to Fri 3 April; feedback 2 April.
        self.c4 = self.dispatched(t(3, 27))
        self.c4 = step(t(3, 30, 9), services.case_accept, case=self.c4, acting_user=b.handler_a)
        ext = step(t(3, 31), joint.extension_request, case=self.c4, acting_user=b.handler_a,
                   reason="需协调规划部门", working_days=2)
        step(t(3, 31, 11), joint.extension_decide, extension=ext, acting_user=b.dispatcher, approve=True)
        self.c4.refresh_from_db()
        self.finish(self.c4, feedback=t(4, 2), publish=t(4, 3))
        step(t(4, 7), services.case_record_follow_up, case=self.c4, acting_user=b.dispatcher, result="unsatisfied")
        step(t(4, 7, 11), services.case_reopen, case=self.c4, acting_user=b.dispatcher, reason="网民不满意")
        with time_machine.travel(t(3, 20), tick=False):
            SupervisionNotice.objects.create(case=self.c2, unit=b.unit_a, content="请加快办理", opened_at=t(3, 20))

    def dispatched(self, when):
        case = step(when, self.b.register)
        return step(when, services.case_dispatch, case=case, acting_user=self.b.dispatcher, unit=self.b.unit_a)

    def finish(self, case, *, feedback, publish, send_back=None, feedback2=None):
        b = self.b
        step(feedback, services.draft_save, case=case, acting_user=b.handler_a, handling_report="已核实",
             reply_text="您好,已核实处理。")
        case = step(feedback, services.case_submit_feedback, case=case, acting_user=b.handler_a)
        if send_back:
            case = step(send_back, services.case_office_send_back, case=case, acting_user=b.reviewer,
                        reason="政策依据不全")
            step(feedback2, services.draft_save, case=case, acting_user=b.handler_a, handling_report="已补充",
                 reply_text="您好,依据如下。")
            case = step(feedback2, services.case_submit_feedback, case=case, acting_user=b.handler_a)
        last = feedback2 or feedback
        case = step(last.replace(hour=16), services.case_office_approve, case=case, acting_user=b.reviewer)
        case = step(last.replace(hour=17), services.case_leader_approve, case=case, acting_user=b.leader)
        return step(publish, services.case_publish_reply, case=case, acting_user=b.dispatcher, where="问政西地省")

    def answered(self, *, dispatch, accept, feedback, publish, follow_ups, send_back=None, feedback2=None):
        case = self.dispatched(dispatch)
        assert case.sign_for_due_at.astimezone(SH).date() > dispatch.date()
        case = step(accept, services.case_accept, case=case, acting_user=self.b.handler_a)
        case = self.finish(case, feedback=feedback, publish=publish, send_back=send_back, feedback2=feedback2)
        for when, result in follow_ups:
            step(when, services.case_record_follow_up, case=case, acting_user=self.b.dispatcher, result=result)
        return case


@pytest.fixture
def timeline(bureau):
    return Timeline(bureau)


def ratio(values, unit):
    r = values[unit.pk]
    return (r.num, r.den)


def test_clocks_of_the_timeline_are_the_ones_worked_out_by_hand(timeline):
    c1 = timeline.c1
    assert c1.sign_for_due_at == t(3, 3)
    assert c1.reply_due_at == t(3, 5)
    assert timeline.c5.reply_due_at == t(3, 3)
    assert timeline.c4.reply_due_at == t(4, 3)


def test_sign_for_on_time_counts_dispatches_of_the_period_and_leaves_out_the_returned_one(timeline):
    values = metric_sign_for_on_time(period=MARCH, as_of=AS_OF)
    # A: C1 on time, C2 late (signed 4 March, due 3 March 10:00), C4 signed Monday 09:00 before
    # its Monday 10:00 deadline; C3 was returned (left out); C5 was dispatched in February.
    assert ratio(values, timeline.b.unit_a) == (2, 3)
    assert ratio(values, timeline.b.unit_b) == (1, 1)


def test_return_rate_charges_the_return_to_the_unit_it_was_dispatched_to(timeline):
    values = metric_return_rate(period=MARCH, as_of=AS_OF)
    assert ratio(values, timeline.b.unit_a) == (1, 4)  # C1, C2, C3, C4 dispatched; C3 returned
    assert ratio(values, timeline.b.unit_b) == (0, 1)


def test_handled_on_time_is_judged_in_the_period_of_the_extended_deadline(timeline):
    march = metric_handled_on_time(period=MARCH, as_of=AS_OF)
    # Due in March: C1 (fed back 4th, due 5th: on time), C2 (fed back 10th: late), C5 (dispatched
    # in February, due 3 March, fed back 4th: late). C4 is due in April after its extension.
    assert ratio(march, timeline.b.unit_a) == (1, 3)
    april = metric_handled_on_time(period=APRIL, as_of=AS_OF)
    # C4: due 1 April, extended to 3 April, fed back 2 April: on time. Its reopened round is due
    # 10 April and has no feedback by the report date: late.
    assert ratio(april, timeline.b.unit_a) == (1, 2)


def test_a_running_clock_is_neither_on_time_nor_late_before_its_deadline(timeline):
    april = metric_handled_on_time(period=APRIL, as_of=t(4, 8))
    assert ratio(april, timeline.b.unit_a) == (1, 1)


def test_send_back_rate_counts_review_send_backs_and_reopenings_per_feedback(timeline):
    march = metric_send_back_rate(period=MARCH, as_of=AS_OF)
    assert ratio(march, timeline.b.unit_a) == (1, 4)  # feedbacks C1, C2 twice, C5; one send-back of C2
    april = metric_send_back_rate(period=APRIL, as_of=AS_OF)
    assert ratio(april, timeline.b.unit_a) == (1, 1)  # C4 fed back, then reopened


def test_satisfaction_leaves_out_the_unreachable_citizen(timeline):
    march = metric_satisfaction(period=MARCH, as_of=AS_OF)
    # C1 满意, C2 未联系上 then 基本满意 (only the rating counts), C5 不满意.
    assert ratio(march, timeline.b.unit_a) == (2, 3)
    april = metric_satisfaction(period=APRIL, as_of=AS_OF)
    assert ratio(april, timeline.b.unit_a) == (0, 1)


def test_mean_working_days_to_reply_counts_from_the_dispatch(timeline):
    values = metric_reply_working_days(period=MARCH, as_of=AS_OF)
    # C1: 2 → 5 March = 3; C2: 2 → 12 March = 8; C5: Thu 26 Feb → Thu 5 March = 5 working days.
    mean = values[timeline.b.unit_a.pk]
    assert (mean.total, mean.count) == (16, 3)
    assert mean.value == pytest.approx(16 / 3)


def test_counts_of_notices_referrals_and_extensions(timeline):
    a = timeline.b.unit_a.pk
    assert metric_supervision_notices(period=MARCH) == {a: 1}
    assert metric_extensions(period=MARCH) == {a: 1}
    assert metric_extensions(period=APRIL) == {}
    assert metric_referrals(period=MARCH) == {}


def test_drill_down_lists_the_cases_behind_a_number(timeline):
    with AssessmentFacts(period=MARCH, as_of=AS_OF) as facts:
        late_or_on_time = metric_case_ids(facts=facts, metric="handled_on_time", part="den",
                                          unit_ids=[timeline.b.unit_a.pk])
        on_time = metric_case_ids(facts=facts, metric="handled_on_time", part="num",
                                  unit_ids=[timeline.b.unit_a.pk])
        returned = metric_case_ids(facts=facts, metric="return_rate", part="num", unit_ids=None)
    assert sorted(late_or_on_time) == sorted([timeline.c1.pk, timeline.c2.pk, timeline.c5.pk])
    assert on_time == [timeline.c1.pk]
    assert returned == [timeline.c3.pk]


def test_a_unit_report_sees_the_case_it_returned_although_another_unit_leads_it_now(timeline):
    values = metric_return_rate(period=MARCH, as_of=AS_OF, unit_ids=[timeline.b.unit_a.pk])
    assert list(values) == [timeline.b.unit_a.pk]
    assert ratio(values, timeline.b.unit_a) == (1, 4)


def test_handler_scope_limits_the_figures_to_his_units_cases(timeline):
    from casework.selectors import cases_visible_to

    values = metric_sign_for_on_time(period=MARCH, as_of=AS_OF,
                                     cases=cases_visible_to(user=timeline.b.handler_b))
    assert set(values) == {timeline.b.unit_b.pk}
