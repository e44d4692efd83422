"""Every changelist of the site accepts as URL lookups only its own filters (issue 9 §1).

``?citizen_contact__startswith=138`` or ``__regex`` on a masked column would tell, case by case,
what the mask hides; the same through a related field (``case__citizen_contact``). The rule lives
in ``accounts.admin_base.ListedLookupsOnlyMixin``; these tests walk ``admin.site._registry``.
"""

from django.contrib import admin
from django.urls import reverse
import pytest

from accounts.models import User
from casework.models import Case, State

PROBES = [
    "citizen_contact__startswith", "citizen_contact__regex", "citizen_contact", "body__contains",
    "case__citizen_contact__startswith", "case__body__regex", "lead_unit__name__regex",
    "unit__members__email__startswith", "password__startswith", "email__regex", "id__gt",
    "topic__memberships__case__citizen_contact__startswith", "memberships__case__body__contains",
]


def changelist_url(model) -> str:
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")


@pytest.fixture
def superuser(db):
    return User.objects.create_superuser(username="root", password="pw", email="root@bureau.invalid")


@pytest.fixture
def world(bureau):
    bureau.case_in(State.HANDLING, citizen_contact="13800138000", body="电话13800138000")
    bureau.case_in(State.REGISTERED, citizen_contact="13911112222")
    return bureau


@pytest.mark.parametrize("model", list(admin.site._registry), ids=lambda m: m._meta.label)
def test_every_changelist_refuses_lookups_outside_its_filters(client, superuser, world, model):
    client.force_login(superuser)
    url = changelist_url(model)
    assert client.get(url).status_code == 200
    for probe in PROBES:
        response = client.get(url, {probe: "1"})
        assert response.status_code == 400, (probe, response.status_code)


@pytest.mark.parametrize("model", list(admin.site._registry), ids=lambda m: m._meta.label)
def test_every_listed_filter_parameter_is_accepted(client, superuser, world, model):
    client.force_login(superuser)
    model_admin = admin.site._registry[model]
    request = client.get(changelist_url(model)).wsgi_request
    request.user = superuser
    allowed = model_admin.listed_lookups(request)
    for item in model_admin.list_filter:
        assert allowed, item  # a filter adds parameters
    for param in sorted(allowed):
        response = client.get(changelist_url(model), {param: "1" if "__isnull" not in param else "True"})
        assert response.status_code in (200, 302, 400), (param, response.status_code)
        if response.status_code == 400:  # only a malformed value, never the lookup itself
            assert "not allowed" not in response.content.decode(), param


def test_the_case_list_refuses_the_contact_oracle_for_everyone(client, world):
    for user in (world.handler_a, world.reviewer, world.dispatcher):
        client.force_login(user)
        for probe in ("citizen_contact__startswith", "citizen_contact__regex", "citizen_contact__in"):
            assert client.get(reverse("admin:casework_case_changelist"), {probe: "138"}).status_code == 400


def test_listed_filters_date_hierarchy_and_search_still_work(client, world):
    client.force_login(world.dispatcher)
    url = reverse("admin:casework_case_changelist")
    for params in ({"state__exact": State.HANDLING}, {"queue": "to_dispatch"}, {"unit": world.unit_a.pk},
                   {"overdue": "no"}, {"platform__id__exact": world.platform.pk}, {"message_type__exact": "consult"},
                   {"submitted_at__year": "2026", "submitted_at__month": "3"}, {"q": "户口"}, {"o": "2.-6"}):
        response = client.get(url, params)
        assert response.status_code == 200, params
    response = client.get(url, {"state__exact": State.HANDLING})
    assert list(response.context["cl"].result_list) == list(Case.objects.filter(state=State.HANDLING))


def test_ordering_reaches_only_list_columns_and_never_a_hidden_field(client, superuser, world):
    client.force_login(superuser)
    for model in admin.site._registry:
        url = changelist_url(model)
        for o in ("1.-2", "99", "citizen_contact", "-1.x.3", "0.1.2.3.4.5.6.7.8.9"):
            response = client.get(url, {"o": o})
            assert response.status_code == 200, (model._meta.label, o, response.status_code)
            cl = response.context["cl"]
            columns = {cl.get_ordering_field(name) for name in cl.list_display}
            default = set(cl._get_default_ordering())
            allowed = {str(getattr(f, "name", f)).lstrip("-") for f in columns | default if f} | {"pk", "id"}
            for field in cl.get_ordering(response.wsgi_request, cl.queryset):
                name = str(getattr(getattr(field, "expression", field), "name", field)).lstrip("-")
                assert name in allowed, (model._meta.label, o, name)
