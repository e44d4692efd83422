"""Kept assessment figures (issue 11 §5) equal the event-log computation on the same timelines.

The timelines of ``tests/test_assessment_metrics.py`` (a returned and re-dispatched case, a
send-back, an approved extension, a reopened case, an unreachable citizen, a 督办单) plus a
co-unit (joint) case and a duplicate merged into its main case. The figures kept by the
background refresh, read back for every reader's scope, are exactly what
``assessment_figures`` computes from the log at the same time; the report a leader opens shows
them with their time, and 立即更新 recomputes them.
"""

from datetime import date

from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
import pytest
import time_machine

from assessment.facts import Period
from assessment.figures_store import REFRESH_LOCK_KEY, figures_kept, figures_refresh
from assessment.models import KeptFigures
from assessment.office_metrics import office_figures, office_figures_load
from assessment.selectors import assessment_figures, assessment_scope_unit_ids
from assessment.tasks import figures_refresh as figures_refresh_task
from casework import joint, services
from tests.test_assessment_metrics import AS_OF, Timeline, step, t

PERIODS = [Period.days(date(2026, 3, 1), date(2026, 3, 31)), Period.days(date(2026, 2, 1), date(2026, 4, 30)),
           Period.year(2026)]


@pytest.fixture
def timelines(bureau):
    tl = Timeline(bureau)
    b = bureau
    # Joint handling: a co-unit (B) on a case of A, reported before the feedback.
    joint_case = tl.dispatched(t(3, 9))
    joint_case = step(t(3, 9, 11), services.case_accept, case=joint_case, acting_user=b.handler_a)
    task = step(t(3, 9, 12), joint.co_unit_assign, case=joint_case, acting_user=b.dispatcher, unit=b.unit_b,
                task="协查监控", working_days=2)
    step(t(3, 10), joint.co_unit_report, task=task, acting_user=b.handler_b, report="已协查")
    joint_case.refresh_from_db()
    tl.finish(joint_case, feedback=t(3, 11), publish=t(3, 12))
    # A duplicate merged into the answered case C1.
    duplicate = step(t(3, 3), b.register)
    step(t(3, 3, 10), joint.case_merge, case=duplicate, into=tl.c1, acting_user=b.dispatcher, reason="重复留言")
    return tl


def _scopes(b):
    return [None] + [assessment_scope_unit_ids(user=u) for u in (b.handler_a, b.handler_b, b.leader)]


@pytest.mark.django_db
def test_kept_figures_equal_the_event_log_computation(timelines, bureau):
    checked = 0
    for period in PERIODS:
        with time_machine.travel(AS_OF, tick=False):
            kept = figures_refresh(period=period)
        assert kept.computed_at == AS_OF
        for unit_ids in _scopes(bureau):
            with time_machine.travel(AS_OF, tick=False):
                stored, row = figures_kept(period=period, unit_ids=unit_ids)
            assert row.pk == kept.pk  # read back, not recomputed
            live = assessment_figures(period=period, unit_ids=unit_ids, as_of=AS_OF)
            assert stored == live, (period, unit_ids)
            checked += sum(len(v) for v in live.values())
    assert checked > 40  # real figures were compared, not empty dictionaries


@pytest.mark.django_db
def test_kept_figures_are_recomputed_when_old_or_asked(timelines, bureau, settings):
    settings.CASEWORK_ASSESSMENT_MAX_AGE_MINUTES = 30
    period = Period.year(2026)
    with time_machine.travel(t(4, 1), tick=False):
        first = figures_refresh(period=period)
    with time_machine.travel(t(4, 1, 10, 20), tick=False):
        _f, row = figures_kept(period=period, unit_ids=None)
    assert row.computed_at == first.computed_at
    with time_machine.travel(t(4, 1, 11), tick=False):
        _f, row = figures_kept(period=period, unit_ids=None)
    assert row.computed_at == t(4, 1, 11)
    with time_machine.travel(t(4, 1, 11, 5), tick=False):
        _f, row = figures_kept(period=period, unit_ids=None, refresh=True)
    assert row.computed_at == t(4, 1, 11, 5)
    assert KeptFigures.objects.count() == 1


@pytest.mark.django_db
def test_beat_task_keeps_this_year_and_last(timelines):
    result = figures_refresh_task.apply(kwargs={"now": AS_OF.isoformat()}).get()
    assert set(result) == {"2026", "2025"}
    assert KeptFigures.objects.count() == 2


@pytest.mark.django_db
def test_a_beat_run_skips_while_another_refresh_holds_the_lock(timelines):
    """Overlapping runs (a whole year at 10M events outlasts the 10-minute beat) do not pile up."""
    cache.delete(REFRESH_LOCK_KEY)
    assert cache.add(REFRESH_LOCK_KEY, "another worker", timeout=60)
    try:
        assert figures_refresh_task.apply(kwargs={"now": AS_OF.isoformat()}).get() == {}
        assert KeptFigures.objects.count() == 0
        assert cache.get(REFRESH_LOCK_KEY) == "another worker"  # not released by the skipped run
    finally:
        cache.delete(REFRESH_LOCK_KEY)
    assert set(figures_refresh_task.apply(kwargs={"now": AS_OF.isoformat()}).get()) == {"2026", "2025"}
    assert KeptFigures.objects.count() == 2
    assert cache.get(REFRESH_LOCK_KEY) is None  # released after the run


@pytest.mark.django_db
def test_report_shows_when_the_figures_were_computed_and_refreshes_on_demand(timelines, bureau, client):
    client.force_login(bureau.leader)
    url = reverse("assessment:report") + "?year=2026"
    with time_machine.travel(AS_OF, tick=False):
        page = client.get(url).content.decode()
    assert "数据更新于 2026-04-30 18:00" in page and 'name="refresh"' in page
    with time_machine.travel(t(4, 30, 18, 5), tick=False):
        response = client.post(url, {"refresh": "1"})
        assert response.status_code == 302
        page = client.get(url).content.decode()
    assert "数据更新于 2026-04-30 18:05" in page


@pytest.mark.django_db
def test_kept_office_figures_equal_the_event_log_computation(timelines, bureau):
    checked = 0
    for period in PERIODS:
        with time_machine.travel(AS_OF, tick=False):
            kept = figures_refresh(period=period)
        live = office_figures(period=period, as_of=AS_OF)
        stored = office_figures_load(kept.office)
        assert [(f.key, f.label, f.values) for f in stored] == [(f.key, f.label, f.values) for f in live]
        checked += sum(r.den for f in live for r in f.values.values())
    assert checked > 5  # real duties were compared, not empty tables


@pytest.mark.django_db
def test_the_report_reads_the_office_table_from_the_kept_figures_not_the_log(timelines, bureau, client):
    client.force_login(bureau.dispatcher)
    url = reverse("assessment:report") + "?year=2026"
    with time_machine.travel(AS_OF, tick=False):
        figures_refresh(period=Period.year(2026))
    with time_machine.travel(t(4, 30, 18, 5), tick=False), CaptureQueriesContext(connection) as queries:
        page = client.get(url).content.decode()
    assert "网评办审核按时率" in page and "数据更新于 2026-04-30 18:00" in page
    # Neither the units' figures nor the office's are computed from the audit log on opening.
    assert not [q["sql"] for q in queries.captured_queries if "casework_caseevent" in q["sql"]]
    # The drill-downs read the log as of the kept time, so they count what the table shows.
    assert "as_of=2026-04-30T18%3A00%3A00%2B08%3A00" in page
