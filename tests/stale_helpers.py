"""Helpers of the stale-submit tests: read a page's form as a browser would submit it."""

from datetime import timedelta
from html.parser import HTMLParser
import re

from django.contrib.admin.models import CHANGE, LogEntry
from django.db import models
from django.utils import timezone

from accounts.versioning import IGNORED_FIELDS


class FormReader(HTMLParser):
    """The fields a browser would submit from the form whose id is ``form_id`` (or the first form
    of the page's content: the header's logout and language forms are not it)."""

    def __init__(self, form_id: str | None = None):
        super().__init__(convert_charrefs=True)
        self.form_id = form_id
        self.depth = 0  # inside the wanted form while > 0
        self.done = False
        self.fields: list[tuple[str, str]] = []
        self.action = ""
        self.text_fields: list[str] = []
        self._select = None  # (name, multiple, options[(value, selected)])
        self._option = None
        self._textarea = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "form" and not self.done and self.depth == 0:
            header_forms = ("logout-form", "cw-language")  # the header's forms are not the page's content
            if (a.get("id") == self.form_id if self.form_id else a.get("id") not in header_forms):
                self.depth = 1
                self.action = a.get("action") or ""
            return
        if not self.depth:
            return
        name = a.get("name")
        if tag == "input" and name and "disabled" not in a:
            kind = (a.get("type") or "text").lower()
            if kind in ("submit", "button", "image", "reset", "file"):
                return
            if kind in ("checkbox", "radio"):
                if "checked" in a:
                    self.fields.append((name, a.get("value", "on")))
                return
            self.fields.append((name, a.get("value", "")))
            if kind in ("text", "email", "url", "search"):
                self.text_fields.append(name)
        elif tag == "textarea" and name and "disabled" not in a:
            self._textarea = [name, ""]
        elif tag == "select" and name and "disabled" not in a:
            self._select = (name, "multiple" in a, [])
        elif tag == "option" and self._select is not None:
            self._option = [a.get("value"), "selected" in a, ""]

    def handle_data(self, data):
        if self._textarea is not None:
            self._textarea[1] += data
        if self._option is not None:
            self._option[2] += data

    def handle_endtag(self, tag):
        if tag == "form" and self.depth:
            self.depth = 0
            self.done = True
        elif tag == "textarea" and self._textarea is not None:
            name, text = self._textarea
            self.fields.append((name, text[1:] if text.startswith("\n") else text))  # as browsers do
            self.text_fields.append(self._textarea[0])
            self._textarea = None
        elif tag == "option" and self._option is not None:
            value, selected, text = self._option
            self._select[2].append((text.strip() if value is None else value, selected))
            self._option = None
        elif tag == "select" and self._select is not None:
            name, multiple, options = self._select
            chosen = [v for v, s in options if s]
            if not chosen and options and not multiple:
                chosen = [options[0][0]]
            self.fields.extend((name, v) for v in chosen)
            self._select = None


def form_ids(html: str, prefix: str) -> list[str]:
    """Ids of the forms in ``html`` starting with ``prefix``."""
    return re.findall(r'<form[^>]*\bid="(%s[^"]*)"' % re.escape(prefix), html)


def form_action(html: str, form_id: str) -> str:
    reader = FormReader(form_id)
    reader.feed(html)
    return reader.action


def read_form(html: str, form_id: str | None = None) -> tuple[dict[str, list[str]], list[str]]:
    """``({name: [values]}, [text field names])`` of the form ``form_id`` in ``html``."""
    reader = FormReader(form_id)
    reader.feed(html)
    data: dict[str, list[str]] = {}
    for name, value in reader.fields:
        data.setdefault(name, []).append(value)
    return data, reader.text_fields


def row_values(obj) -> dict:
    """Every concrete field of ``obj`` as stored now (re-read from the database)."""
    fresh = type(obj)._base_manager.get(pk=obj.pk)
    return {f.attname: getattr(fresh, f.attname) for f in fresh._meta.concrete_fields}


def change_underneath(obj, *, by, avoid=()) -> str:
    """Change one field of ``obj`` as another user would (database write + admin log); its name.

    The field is the first plain text, then number, then yes/no field that is not unique and not
    in ``avoid`` (the attnames of the fields the user edits on the page).
    """
    model = type(obj)
    fresh = model._base_manager.get(pk=obj.pk)
    fields = [
        f for f in model._meta.concrete_fields
        if not f.primary_key and f.attname not in IGNORED_FIELDS and f.attname not in avoid
        and f.name not in ("password",) and not getattr(f, "auto_now", False)
        and not getattr(f, "auto_now_add", False) and not isinstance(f, (models.SlugField, models.EmailField))
    ]
    plain = [f for f in fields if not f.choices]
    passes = (
        ([f for f in plain if not f.unique], (models.CharField, models.TextField),
         lambda v, f: ((v or "") + "改")[-(f.max_length or 999):]),
        ([f for f in plain if not f.unique], (models.IntegerField, models.DecimalField, models.FloatField),
         lambda v, f: (v or 0) + 1),
        (plain, (models.BooleanField,), lambda v, f: not v),
        (plain, (models.DateField,), lambda v, f: (v or timezone.now()) + timedelta(days=1)),
        (plain, (models.CharField,), lambda v, f: ((v or "") + "改")[-(f.max_length or 999):]),
        ([f for f in fields if f.choices], (models.Field,),
         lambda v, f: next(c for c, _label in f.flatchoices if c != v)),
    )
    for candidates, kinds, change in passes:
        for field in candidates:
            if isinstance(field, kinds):
                value = change(getattr(fresh, field.attname), field)
                model._base_manager.filter(pk=obj.pk).update(**{field.attname: value})
                LogEntry.objects.log_actions(user_id=by.pk, queryset=[fresh], action_flag=CHANGE,
                                             change_message=f"改了 {field.name}", single_object=True)
                return field.attname
    for field in model._meta.many_to_many:  # e.g. a group's permissions
        related = field.related_model._base_manager.exclude(
            pk__in=getattr(fresh, field.name).values("pk")).first()
        if related is not None:
            getattr(fresh, field.name).add(related)
            LogEntry.objects.log_actions(user_id=by.pk, queryset=[fresh], action_flag=CHANGE,
                                         change_message=f"改了 {field.name}", single_object=True)
            return field.name
    if avoid:  # nothing else to change: the same field the user edits (a real conflict)
        return change_underneath(obj, by=by)
    raise AssertionError(f"no field of {model._meta.label} to change underneath")
