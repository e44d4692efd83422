"""The sweep's cost per due case is a small constant: recipients are read once per rung and unit."""

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from django.db import connection
from django.test.utils import CaptureQueriesContext
import pytest
import time_machine

from casework import escalation
from casework.models import State

SHANGHAI = ZoneInfo("Asia/Shanghai")
THEN = datetime(2026, 3, 2, 9, 0, tzinfo=SHANGHAI)


@pytest.mark.parametrize("n", [3, 12])
def test_each_due_case_costs_a_small_constant_number_of_queries(bureau, settings, n):
    settings.CELERY_TASK_ALWAYS_EAGER = False
    with time_machine.travel(THEN, tick=False):
        for _ in range(n):
            bureau.case_in(State.HANDLING)

    with CaptureQueriesContext(connection) as queries:
        taken = escalation.escalation_sweep(now=THEN + timedelta(days=30))

    assert taken == {"urge": n}
    # Fixed part (rungs, calendar, one selection per rung, unit notice count) plus at most 18
    # statements per due case, savepoints included (lock, re-check, step, 督办单, event and its
    # sealed chain head, e-mail).
    # (The fixed part is one selection per rung: 14 with the 网评办's two 交办 rungs, issue 13 §5.)
    assert len(queries) <= 14 + 18 * n
    # The unit's and the 网评办's addresses are read once per sweep, not once per case.
    membership_reads = [q for q in queries.captured_queries if "accounts_unitmembership" in q["sql"]]
    assert len(membership_reads) <= 4


@pytest.mark.skipif(connection.vendor != "postgresql", reason="advisory locks are PostgreSQL's")
@pytest.mark.django_db(transaction=True)
def test_a_sweep_that_starts_while_another_runs_skips(bureau, settings):
    import threading

    from django.db import connections

    from casework.tasks import escalation_sweep

    settings.CELERY_TASK_ALWAYS_EAGER = False
    with time_machine.travel(THEN, tick=False):
        bureau.case_in(State.HANDLING)
    holding, release = threading.Event(), threading.Event()

    def running_sweep():  # another worker's sweep, on its own connection, holding the lock
        try:
            with escalation.sweep_lock() as acquired:
                assert acquired
                holding.set()
                release.wait(10)
        finally:
            connections.close_all()

    other = threading.Thread(target=running_sweep)
    other.start()
    assert holding.wait(10)
    try:
        assert escalation_sweep.run() == {"skipped": 1}
    finally:
        release.set()
        other.join(10)
    # Once the other sweep has finished, the next one runs.
    result = escalation_sweep.run()
    assert "skipped" not in result
