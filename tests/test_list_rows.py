"""Every changelist's rows are Django's HTML, cell for cell (accounts.admin_lists.result_rows).

The rows are built once per column instead of once per cell (a quarter of a case list's request,
issue 11 §3). Here the demo bureau is loaded from real messages (cases in every state, 督办单,
referrals, outbox rows, audit events …) and, for every registered admin, the rows the site renders
are compared with what Django's ``items_for_result`` gives for the same changelist: as a
superuser, as a unit handler (whose lists hold scoped rows and other columns' links), and in a
pop-up (the row links carry ``data-popup-opener``).
"""

from io import StringIO

from django.contrib import admin
from django.contrib.admin.templatetags.admin_list import items_for_result
from django.core.management import call_command
from django.urls import reverse
import pytest

from accounts.admin_lists import result_rows
from accounts.models import User


@pytest.fixture
def demo(db, small_data_file, settings):
    settings.CELERY_TASK_ALWAYS_EAGER = True
    call_command("demo_setup", file=str(small_data_file), password="pw-demo", stdout=StringIO())


def _compare(client, url: str, *, allowed_only: bool = False) -> int:
    """Rows of the changelist at ``url``: the site's equal Django's; return how many were compared.

    ``allowed_only``: a list the user may not open (403) compares nothing.
    """
    response = client.get(url)
    if allowed_only and response.status_code == 403:
        return 0
    assert response.status_code == 200, url
    cl = response.context_data["cl"]
    ours = result_rows(cl)
    assert len(ours) == len(cl.result_list)
    forms = cl.formset.forms if cl.formset else [None] * len(ours)  # list edits: Django's own rows
    for result, row, form in zip(cl.result_list, ours, forms, strict=True):
        assert list(row) == list(items_for_result(cl, result, form)), (url, result.pk)
    html = response.content.decode()
    for row in ours:  # and the page shows them
        assert "".join(row)[:200] in html
    return len(ours)


@pytest.mark.django_db
def test_every_changelist_renders_its_rows_as_django_does(client, demo):
    root = User.objects.filter(is_superuser=True).first()
    handler = User.objects.filter(is_superuser=False, groups__name__icontains="handler").first() or \
        User.objects.filter(is_superuser=False, username__endswith="_h1").first()
    with_rows = 0
    for user in (root, handler):
        client.force_login(user)
        for model in admin.site._registry:
            url = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")
            if _compare(client, url, allowed_only=user is handler):
                with_rows += 1
    assert with_rows >= 25, with_rows


@pytest.mark.django_db
def test_a_popup_changelist_renders_its_rows_as_django_does(client, demo):
    client.force_login(User.objects.filter(is_superuser=True).first())
    for name in ("accounts_unit", "casework_case", "accounts_user"):
        assert _compare(client, reverse(f"admin:{name}_changelist") + "?_popup=1&_to_field=id") > 0, name
    # Filters preserved in the row links, and a search.
    url = reverse("admin:casework_case_changelist")
    assert _compare(client, url + "?state__exact=handling&o=2") > 0
    assert _compare(client, url + "?q=%E6%B4%BE%E5%87%BA%E6%89%80") >= 0
