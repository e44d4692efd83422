"""The admin site builds its module list only for pages that show it (config/admin_site.py)."""

from django.contrib import admin
from django.contrib.admin.sites import AdminSite
from django.urls import reverse
import pytest

from casework.choices import State
from config.admin_site import CaseworkAdminSite


@pytest.fixture
def app_list_builds(monkeypatch):
    """Count how often Django's module list is built (the real method runs each time)."""
    calls = []
    real = AdminSite._build_app_dict

    def counting(self, request, label=None):
        calls.append(label)
        return real(self, request, label)

    monkeypatch.setattr(AdminSite, "_build_app_dict", counting)
    return calls


def test_the_site_is_the_casework_site():
    assert isinstance(admin.site, CaseworkAdminSite)


@pytest.mark.parametrize("who", ["dispatcher", "handler_a", "leader"])
def test_a_work_list_does_not_build_the_module_list_it_leaves_out(bureau, client, app_list_builds, who):
    bureau.case_in(State.HANDLING)
    client.force_login(getattr(bureau, who))
    response = client.get(reverse("admin:casework_case_changelist"))
    assert response.status_code == 200
    assert 'id="nav-sidebar"' not in response.content.decode()
    assert app_list_builds == []


@pytest.mark.parametrize("who", ["dispatcher", "handler_a", "leader"])
def test_the_index_and_a_form_page_still_list_the_modules(bureau, client, app_list_builds, who):
    case = bureau.case_in(State.HANDLING)
    user = getattr(bureau, who)
    client.force_login(user)
    index = client.get(reverse("admin:index"))
    assert index.status_code == 200
    app_list = index.context["app_list"]
    assert len(app_list) > 0 and any(app["app_label"] == "casework" for app in app_list)
    assert len(app_list_builds) == 1, "each_context and the index share one module list per request"
    page = client.get(reverse("admin:casework_case_change", args=[case.pk]))
    assert page.status_code == 200
    body = page.content.decode()
    assert 'id="nav-sidebar"' in body
    assert reverse("admin:casework_case_changelist") in body
