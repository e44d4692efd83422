"""``manage.py replay_deadlines``: real messages replayed through the calendar and the ladder."""

import csv
import gzip
from io import StringIO
import re

from django.core.management import call_command
import pytest

from casework.models import Case, CaseClock, EscalationStep, WorkCalendarDay

pytestmark = pytest.mark.django_db


def write_csv(path, rows):
    with gzip.open(path, "wt", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["message_id", "subject", "body", "submitted_at",
                                                "replied_at"])
        writer.writeheader()
        writer.writerows(rows)


def test_the_replay_counts_each_level_from_the_real_calendar_without_touching_cases(tmp_path):
    # Consultations (3 working days). Submitted Fri 2018-12-28 16:00 → due Thu 2019-01-03 16:00
    # (the 调休 Saturday counts, the New Year break does not).
    rows = [
        # replied in time, before the reminder window (Wed 01-02 16:00)
        {"message_id": 1, "subject": "咨询户口", "body": "请问", "submitted_at": "2018-12-28T16:00:00",
         "replied_at": "2019-01-02T10:00:00"},
        # replied in the last working day: reminded, not urged
        {"message_id": 2, "subject": "咨询户口", "body": "请问", "submitted_at": "2018-12-28T16:00:00",
         "replied_at": "2019-01-03T15:00:00"},
        # 3 working days late (Tue 01-08 16:00): urged and escalated, not referred
        {"message_id": 3, "subject": "咨询户口", "body": "请问", "submitted_at": "2018-12-28T16:00:00",
         "replied_at": "2019-01-08T17:00:00"},
        # 6 working days late: the whole ladder
        {"message_id": 4, "subject": "咨询户口", "body": "请问", "submitted_at": "2018-12-28T16:00:00",
         "replied_at": "2019-01-11T17:00:00"},
        {"message_id": 5, "subject": "no time", "body": "", "submitted_at": "", "replied_at": ""},
    ]
    path = tmp_path / "replies.csv.gz"
    write_csv(path, rows)
    out = StringIO()
    call_command("replay_deadlines", str(path), stdout=out)
    text = out.getvalue()
    assert "回放 4 条留言" in text and "跳过 1 行" in text
    assert "2018–2020 年取自 chinese_calendar" in text
    counts = dict(re.findall(r"\((remind|urge|escalate|refer), [+-]\d\):\s+(\d+)", text))
    assert counts == {"remind": "3", "urge": "2", "escalate": "2", "refer": "1"}
    assert "按时答复:2 条" in text
    # Working days to reply: 2 (12-29, 01-02), 3, 6, 9.
    assert "P50=3" in text and "max=9" in text
    assert not Case.objects.exists() and not CaseClock.objects.exists()
    assert not EscalationStep.objects.exists() and not WorkCalendarDay.objects.exists()


def test_the_replay_of_the_bundled_file_prints_every_level_and_the_distribution():
    out = StringIO()
    call_command("replay_deadlines", stdout=out)
    text = out.getvalue()
    assert "回放 2253 条留言" in text
    assert "2011–2021 年取自 chinese_calendar" in text
    for level in ["remind", "urge", "escalate", "refer"]:
        assert f"({level}," in text
    assert re.search(r"P10=\d+ +P25=\d+ +P50=\d+", text)
    assert "警告" not in text  # every year of the file is covered by the calendar
