"""Build a real ladder referral (督办单 → 分管局领导 → 纪检督察) for the 跟踪督办 tests."""

from datetime import datetime
from io import StringIO
from zoneinfo import ZoneInfo

from django.core.management import call_command
import time_machine

from casework import escalation
from casework.models import DisciplineReferral, State

SHANGHAI = ZoneInfo("Asia/Shanghai")


def bj(*args) -> datetime:
    return datetime(*args, tzinfo=SHANGHAI)


def calendar_seed() -> None:
    call_command("calendar_seed", "--from-year", "2018", "--to-year", "2026", stdout=StringIO(), stderr=StringIO())


def ladder_referral(bureau, *, unit=None, capture=None, **fields) -> DisciplineReferral:
    """A consultation of ``unit`` (default A) dispatched Mon 2026-03-02 10:00, reply due Thu 03-05
    10:00, left unanswered: the sweeps of 03-05, 03-10 and 03-12 open its 督办单, escalate it and
    refer it to 纪检督察 (the ladder's own snapshot). ``capture``: django_capture_on_commit_callbacks;
    ``fields``: the message's own fields (subject, body)."""
    at = bj(2026, 3, 2, 10, 0)
    with time_machine.travel(at, tick=False):
        case = bureau.case_in(State.HANDLING, unit=unit, **{"submitted_at": at, **fields})
    for now in (bj(2026, 3, 5, 10, 1), bj(2026, 3, 10, 10, 0), bj(2026, 3, 12, 10, 0)):
        if capture is not None:
            with capture(execute=True):
                escalation.escalation_sweep(now=now)
        else:
            escalation.escalation_sweep(now=now)
    return DisciplineReferral.objects.get(case=case)
