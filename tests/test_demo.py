"""The demo loader builds the bureau and walks real messages into every state of the loop."""

import csv
import gzip
from io import StringIO

from django.core.management import call_command
import pytest

from accounts.models import Unit, User
from casework.models import (
    Case,
    CoUnitTask,
    DisciplineReferral,
    Extension,
    Notification,
    PublishedReply,
    State,
    SupervisionNotice,
)


@pytest.mark.django_db
def test_demo_setup_builds_bureau_and_cases_in_every_state(small_data_file, settings):
    settings.CELERY_TASK_ALWAYS_EAGER = True
    out = StringIO()
    call_command("demo_setup", file=str(small_data_file), password="pw-demo", stdout=out)

    assert User.objects.filter(is_superuser=False).count() == 42
    assert Unit.objects.filter(kind=Unit.Kind.DISTRICT).count() == 7
    assert Unit.objects.get(function=Unit.Function.COMMENT_OFFICE).name == "网评办"
    assert Case.objects.count() == 150
    states = set(Case.objects.values_list("state", flat=True))
    assert states == set(State.values)
    # Published replies are the platform's official replies, not invented text.
    replied = Case.objects.filter(state__in=[State.REPLIED, State.ARCHIVED]).exclude(published_reply="")
    assert replied.exists()
    assert all("您好" in c.published_reply or "网友" in c.published_reply or len(c.published_reply) > 30
               for c in replied)
    # What was published is, byte for byte, the draft version the leader signed (issue 8 §1).
    published = PublishedReply.objects.select_related("case", "draft")
    assert set(replied.values_list("pk", flat=True)) <= set(published.values_list("case_id", flat=True))
    for publication in published:
        leader = publication.case.events.filter(action="leader_approve").order_by("-seq").first()
        assert publication.text == publication.draft.reply_text == publication.case.published_reply
        assert leader.payload["draft_id"] == publication.draft_id
    # Overdue cases were escalated: notices opened, and e-mails queued in the outbox.
    assert SupervisionNotice.objects.exists()
    assert DisciplineReferral.objects.exists()
    assert Notification.objects.filter(subject__startswith="【催办·督办单】").exists()
    # Joint handling, an extension request and a key case led by a leader are in the demo too.
    assert CoUnitTask.objects.exists()
    assert Extension.objects.exists()
    assert Case.objects.filter(is_key_case=True, key_case_leader__isnull=False).exists()
    assert "wpb_li" in out.getvalue()
    assert "未能推进" not in out.getvalue(), out.getvalue()


@pytest.mark.django_db
def test_demo_setup_twice_adds_no_duplicates(small_data_file, settings):
    settings.CELERY_TASK_ALWAYS_EAGER = True
    call_command("demo_setup", file=str(small_data_file), password="pw-demo", stdout=StringIO())
    counts = (Case.objects.count(), User.objects.count(), Unit.objects.count(),
              Notification.objects.count(), SupervisionNotice.objects.count())
    states = sorted(Case.objects.values_list("state", flat=True))

    call_command("demo_setup", file=str(small_data_file), password="pw-demo", stdout=StringIO())

    assert (Case.objects.count(), User.objects.count(), Unit.objects.count(),
            Notification.objects.count(), SupervisionNotice.objects.count()) == counts
    assert sorted(Case.objects.values_list("state", flat=True)) == states


@pytest.mark.django_db
def test_demo_history_lies_in_the_last_twelve_months_and_keeps_each_messages_intervals(small_data_file, settings):
    """Issue 10 item 9: re-based onto the last year, each reply as long after its message as in reality."""
    from datetime import datetime, timedelta

    from django.utils import timezone

    from casework.calendar import SHANGHAI
    from casework.models import CaseEvent

    settings.CELERY_TASK_ALWAYS_EAGER = True
    before = timezone.now()
    call_command("demo_setup", file=str(small_data_file), password="pw-demo", stdout=StringIO())
    after = timezone.now()
    year_ago = before - timedelta(days=366)

    with gzip.open(small_data_file, "rt", encoding="utf-8-sig", newline="") as fh:
        real = {r["message_id"]: r for r in csv.DictReader(fh)}

    def parse(text):
        value = datetime.fromisoformat(text)
        return value if value.tzinfo else value.replace(tzinfo=SHANGHAI)

    cases = list(Case.objects.all())
    assert all(year_ago <= c.submitted_at <= after for c in cases)
    assert all(c.reference.split("-")[1] == str(timezone.localtime(c.created_at).year) for c in cases)
    events = CaseEvent.objects.all()
    assert events.filter(at__lt=year_ago).count() == 0 and events.filter(at__gt=after).count() == 0
    # Registration the same day as the message, events in the order of their chain.
    for case in cases:
        ats = list(case.events.order_by("seq").values_list("at", flat=True))
        assert ats == sorted(ats), list(case.events.order_by("seq").values_list("action", "at"))
        assert timedelta(0) <= ats[0] - case.submitted_at <= timedelta(days=1)
    # Published at the re-based reply time: the real interval message → reply is kept.
    published = PublishedReply.objects.select_related("case")
    assert published.exists()
    for p in published:
        row = real[p.case.external_id]
        interval = max(parse(row["replied_at"]) - parse(row["submitted_at"]), timedelta(hours=1))
        assert abs((p.published_at - p.case.submitted_at) - interval) < timedelta(seconds=2)
        assert abs(p.case.events.get(action="publish_reply").at - p.published_at) < timedelta(seconds=1)
    # A living bureau: open cases today, some overdue (escalated), the newest still waiting.
    open_cases = Case.objects.exclude(state__in=[State.ARCHIVED, State.REPLIED])
    assert open_cases.count() >= 13
    assert SupervisionNotice.objects.filter(opened_at__lt=before - timedelta(days=1)).exists()
    assert Case.objects.filter(state=State.ARCHIVED, archived_at__lt=before - timedelta(days=30)).exists()
