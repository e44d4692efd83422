"""English is complete: every UI string has a translation, and English pages show no Chinese UI text.

The pages are walked with data that is itself in Latin letters (unit names, subjects, bodies), so
any Chinese character left on an English page is a UI string without a translation.
"""

import gettext as gettext_module
from pathlib import Path
import re
import shutil

from django.conf import settings
from django.contrib import admin
from django.core.management import call_command
from django.test import Client
from django.urls import reverse
from django_celery_beat.models import PeriodicTask
import pytest

from accounts.models import Unit, User
from casework.models import (
    DeadlinePolicy,
    EscalationRung,
    Notification,
    Platform,
    PoorHandlingReason,
    QualityRung,
    State,
)

CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
CATALOGUE = Path(settings.BASE_DIR) / "locale" / "en" / "LC_MESSAGES" / "django.po"


def _entries(po_text: str) -> dict[str, bool]:
    """msgid → translated, for every non-obsolete entry of a .po file (header excluded)."""
    entries = {}
    for block in po_text.split("\n\n"):
        if block.lstrip().startswith("#~"):
            continue
        ids = re.search(r'^msgid ((?:".*"\n?)+)', block, re.M)
        if not ids:
            continue
        msgid = "".join(re.findall(r'"(.*)"', ids.group(1)))
        if not msgid:
            continue
        strs = re.findall(r'^msgstr(?:\[\d\])? ((?:".*"\n?)+)', block, re.M)
        entries[msgid] = bool(strs) and all("".join(re.findall(r'"(.*)"', s)) for s in strs)
    return entries


def test_english_catalogue_translates_every_string_of_the_source(tmp_path, settings, monkeypatch):
    if not shutil.which("xgettext"):
        pytest.fail("GNU gettext (xgettext) is needed: make test installs it (Debian package gettext).")
    # Extract from a copy of the source, so the shipped catalogue is never touched.
    source = tmp_path / "src"
    shutil.copytree(settings.BASE_DIR, source, ignore=shutil.ignore_patterns(
        ".*", "var", "test-artifacts", "locale", "tests", "scripts", "__pycache__", "staticfiles", "*.gz"))
    (source / "locale").mkdir()
    settings.LOCALE_PATHS = [source / "locale"]
    monkeypatch.chdir(source)
    call_command("makemessages", locale=["en"], verbosity=0)
    call_command("makemessages", locale=["en"], domain="djangojs", verbosity=0, ignore_patterns=["static/vendor/*"])
    for domain, at_least in (("django", 500), ("djangojs", 20)):
        extracted = _entries((source / "locale" / "en" / "LC_MESSAGES" / f"{domain}.po").read_text(encoding="utf-8"))
        shipped = _entries((CATALOGUE.parent / f"{domain}.po").read_text(encoding="utf-8"))
        assert len(extracted) > at_least, domain
        missing = sorted(m for m in extracted if not shipped.get(m))
        assert missing == [], f"{domain}: {len(missing)} strings have no English translation (makemessages -l en)"


def _singular_translations(po_text: str) -> dict[tuple[str, str], str]:
    """(msgctxt, msgid) → msgstr of every translated singular entry of a .po file."""
    out = {}
    for block in po_text.split("\n\n"):
        if block.lstrip().startswith("#~") or "msgid_plural" in block:
            continue
        ctx = re.search(r'^msgctxt ((?:".*"\n?)+)', block, re.M)
        ids = re.search(r'^msgid ((?:".*"\n?)+)', block, re.M)
        strs = re.search(r'^msgstr ((?:".*"\n?)+)', block, re.M)
        if not ids or not strs:
            continue
        def join(m):
            return "".join(re.findall(r'"(.*)"', m.group(1))).encode().decode("unicode_escape").encode(
                    "latin-1").decode("utf-8")
        msgid, msgstr = join(ids), join(strs)
        if msgid and msgstr:
            out[(join(ctx) if ctx else "", msgid)] = msgstr
    return out


def test_compiled_catalogue_is_current():
    """The shipped .mo files say what the .po files say (compilemessages -l en after each change)."""
    for po in (CATALOGUE, CATALOGUE.parent / "djangojs.po"):
        with open(po.with_suffix(".mo"), "rb") as fh:
            compiled = gettext_module.GNUTranslations(fh)
        entries = _singular_translations(po.read_text(encoding="utf-8"))
        assert len(entries) > 10
        stale = [msgid for (ctx, msgid), msgstr in entries.items()
                 if (compiled.pgettext(ctx, msgid) if ctx else compiled.gettext(msgid)) != msgstr]
        assert stale == [], f"{po.name}: run compilemessages -l en ({len(stale)} entries differ)"


def _latin_bureau(bureau):
    for unit in Unit.objects.all():
        unit.name = f"Unit {unit.code}"
        unit.save(update_fields=["name"])
    cases = {}
    for state in (State.REGISTERED, State.DISPATCHED, State.HANDLING, State.OFFICE_REVIEW,
                  State.LEADER_REVIEW, State.APPROVED, State.REPLIED):
        cases[state] = bureau.case_in(state, subject=f"Street light {state}", body="The light is broken.",
                                       report="Checked on site.", reply="The light was repaired.",
                                       where="Wenzheng board")
    Platform.objects.update(name="Wenzheng")
    # Configuration seeded in Chinese is data a superuser edits, not UI text.
    for rung in EscalationRung.objects.all():
        rung.name = f"Rung {rung.pk}"
        rung.save(update_fields=["name"])
    DeadlinePolicy.objects.update(source="defaults")
    for reason in PoorHandlingReason.objects.all():  # issue 13's seeded lists, data as well
        reason.name = f"Reason {reason.pk}"
        reason.save(update_fields=["name"])
    for quality_rung in QualityRung.objects.all():
        quality_rung.name = f"Quality rung {quality_rung.pk}"
        quality_rung.save(update_fields=["name"])
    PeriodicTask.objects.update(description="")
    for task in PeriodicTask.objects.all():
        task.name = f"task {task.pk}"
        task.save(update_fields=["name"])
    Notification.objects.all().delete()
    return cases


def _english(user: User) -> Client:
    client = Client(HTTP_ACCEPT_LANGUAGE="en")
    client.force_login(user)
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "en"
    return client


def _chinese_in(html: str) -> list[str]:
    # Scripts and styles are not text; the language switch names each language in its own tongue.
    text = re.sub(r"<script.*?</script>|<style.*?</style>|<form id=\"cw-language\".*?</form>", "", html,
                  flags=re.S)
    return sorted({m.group(0) for m in re.finditer(r"[^<>\n]{0,30}" + CJK.pattern + r"[^<>\n]{0,30}", text)})


@pytest.mark.django_db
def test_english_pages_show_no_chinese_ui_text(bureau):
    cases = _latin_bureau(bureau)
    superuser = User.objects.create_superuser("root", "root@bureau.invalid", "pw", full_name="Root")
    people = [superuser, bureau.dispatcher, bureau.reviewer, bureau.leader, bureau.supervisor, bureau.handler_a]
    urls = [reverse("admin:index"), reverse("admin:casework_case_changelist")]
    urls += [reverse("admin:casework_case_change", args=[c.pk]) for c in cases.values()]
    urls += [reverse(f"admin:{m._meta.app_label}_{m._meta.model_name}_changelist") for m in admin.site._registry]
    urls += ["/admin/assessment/report/", "/admin/assessment/dashboard/"]
    found = {}
    for person in people:
        client = _english(person)
        for url in urls:
            response = client.get(url)
            if response.status_code != 200 or "html" not in response.get("Content-Type", ""):
                continue
            chinese = _chinese_in(response.content.decode())
            if chinese:
                found[f"{person.username} {url}"] = chinese[:5]
    assert found == {}
