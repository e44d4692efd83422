"""分管局领导: superusers set which units each leader is in charge of; tier 3 goes to that leader."""

from django.core import mail
from django.core.exceptions import PermissionDenied
from django.test import Client
from django.urls import reverse
import pytest

from accounts import roles
from accounts.models import Unit
from accounts.selectors import leader_emails_for_unit, unit_leaders_in_charge
from accounts.services import unit_create
from casework import selectors, services
from casework.models import State
from tests.factories import make_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def leaders(bureau):
    """Leader ``bureau.leader`` in charge of district A; ``zhang`` in charge of district B."""
    zhang = make_user("zhang", role=roles.LEADER, unit=bureau.leadership, city_wide=bureau.city)
    bureau.unit_a.leaders.add(bureau.leader)
    bureau.unit_b.leaders.add(zhang)
    return zhang


def test_a_unit_without_leaders_takes_its_parents_and_the_bureau_falls_back_to_every_leader(bureau, leaders):
    station = unit_create(name="城关派出所", code="cg", kind=Unit.Kind.STATION, parent=bureau.unit_a)
    assert unit_leaders_in_charge(unit=station) == [bureau.leader]
    assert unit_leaders_in_charge(unit=bureau.unit_b) == [leaders]
    assert unit_leaders_in_charge(unit=bureau.office) == []
    assert leader_emails_for_unit(unit=bureau.office) == sorted([bureau.leader.email, leaders.email])


def test_tier_three_mail_and_queue_go_to_the_leader_in_charge(bureau, leaders, eager_celery,
                                                              django_capture_on_commit_callbacks):
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        case = bureau.case_in(State.LEADER_REVIEW, unit=bureau.unit_b)
    to_sign = [m for m in mail.outbox if "待审签" in m.subject]
    assert [m.to for m in to_sign] == [[leaders.email]]
    assert case in selectors.case_queue(user=leaders, key="leader_review")
    assert case not in selectors.case_queue(user=bureau.leader, key="leader_review")


def test_other_leaders_may_still_sign_by_default_but_not_when_configured(bureau, leaders, settings):
    case = bureau.case_in(State.LEADER_REVIEW, unit=bureau.unit_b)
    settings.CASEWORK_LEADER_REVIEW = "in_charge"
    with pytest.raises(PermissionDenied):
        services.case_leader_approve(case=case, acting_user=bureau.leader)
    case.refresh_from_db()
    assert case.state == State.LEADER_REVIEW
    services.case_leader_approve(case=case, acting_user=leaders)
    other = bureau.case_in(State.LEADER_REVIEW, unit=bureau.unit_b)
    settings.CASEWORK_LEADER_REVIEW = "any"
    services.case_leader_approve(case=other, acting_user=bureau.leader)
    other.refresh_from_db()
    assert other.state == State.APPROVED


def test_superuser_sets_the_leaders_of_a_unit_in_the_unit_admin(bureau):
    root = make_user("root")
    root.is_superuser = True
    root.save()
    client = Client()
    client.force_login(root)
    url = reverse("admin:accounts_unit_change", args=[bureau.unit_b.pk])
    form = client.get(url).context["adminform"].form
    assert list(form.fields["leaders"].queryset) == [bureau.leader]
    data = {"name": bureau.unit_b.name, "code": bureau.unit_b.code, "kind": bureau.unit_b.kind, "function": "",
            "parent": bureau.city.pk, "email": "", "keywords": "", "is_active": "on", "leaders": [bureau.leader.pk]}
    response = client.post(url, data)
    assert response.status_code == 302, response.content.decode()[:2000]
    assert list(bureau.unit_b.leaders.all()) == [bureau.leader]
