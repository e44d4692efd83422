"""Bulk seeding for the sweep's tests: many handling cases with a running reply clock, quickly.

Written the way a bulk path must write them (like an import): each case gets its registration
event sealed with :meth:`CaseEvent.compute_hash` and its chain head recorded, so the audit chain
of every seeded case verifies before and after the sweep.
"""

from datetime import datetime

from casework.audit import chain_heads_bulk_record
from casework.models import Case, CaseClock, CaseEvent, State


def seed_handling_cases(bureau, n: int, *, unit, started_at: datetime, due_at: datetime,
                        tag: str = "S") -> list[Case]:
    """Write ``n`` cases being handled by ``unit`` whose reply clock (started ``started_at``) is due ``due_at``."""
    start = Case.objects.count()
    cases = Case.objects.bulk_create([
        Case(platform=bureau.platform, reference=f"{tag}{unit.code}-{start + i:06d}", external_id=f"{tag}{start + i}",
             subject=f"批量留言 {tag}{i} 联系电话13812345678", body=f"批量留言正文 {i}", submitted_at=started_at,
             message_type="consult", state=State.HANDLING, lead_unit=unit, dispatched_at=started_at,
             accepted_at=started_at, reply_due_at=due_at)
        for i in range(n)
    ])
    events = []
    for case in cases:
        event = CaseEvent(case_id=case.pk, seq=1, action="register", actor=bureau.dispatcher,
                          from_state="", to_state=State.REGISTERED, at=started_at, payload={}, prev_hash="")
        event.hash = event.compute_hash()
        events.append(event)
    CaseEvent.objects.bulk_create(events)
    chain_heads_bulk_record(events=events)
    CaseClock.objects.bulk_create([
        CaseClock(case_id=case.pk, clock="reply", round=1, unit=unit, started_at=started_at, amount=3,
                  time_unit="days", due_at=due_at)
        for case in cases
    ])
    return cases
