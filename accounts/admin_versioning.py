"""Optimistic locking of every admin page: change forms, list edits, actions and deletes.

:class:`VersionedAdminMixin` is part of :class:`accounts.admin_base.StaffAdminMixin`, so every admin
of the site has it. What the user saw travels with each submit as a version token
(:mod:`accounts.versioning`):

- change form: a hidden ``_version`` field of the form (rendered by ``admin/change_form.html``,
  block ``form_top``, as it is in no fieldset); a stale
  submit is a form error naming who changed what and when; the user's input is re-rendered and
  the page carries the current version, so a second, deliberate save is possible;
- changelist: one hidden ``_row_version`` (``pk:token``) per listed row (``admin/change_list.html``);
  a list edit with a stale row saves nothing and re-renders the input; an action leaves out the
  rows changed since they were listed (and any selected row that was not listed), with a warning
  per row naming who changed it; the second step of any intermediate page (Django's delete
  confirmation, the bulk archive's confirmation, the bulk dispatch's unit choice) keeps the first
  step's versions in the session and is checked against them, so a row changed while the page was
  open is left out too;
- delete page: the version shown on the confirmation is checked when deleting.

A submit without a version (an old client, a script posting by hand) is not checked.
"""

from __future__ import annotations

import functools

from django import forms
from django.contrib import messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import ValidationError
from django.db import router, transaction
from django.forms.models import _get_foreign_key
from django.http import HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import NoReverseMatch, reverse
from django.utils.translation import gettext as _

from accounts.versioning import (
    Change,
    changed_keys,
    digest,
    last_change,
    m2m_state,
    row_state,
    stale_message,
    token_decode,
    token_encode,
)

VERSION_FIELD = "_version"
ROW_VERSION_FIELD = "_row_version"
_SESSION_ACTION = "stale_rows:{label}:{action}"
_SESSION_DELETE = "stale_delete:{label}:{pk}"


class VersionField(forms.CharField):
    """The hidden version a form carries; never counted as a change the user made."""

    def __init__(self, **kwargs):
        kwargs.setdefault("widget", forms.HiddenInput)
        kwargs.setdefault("required", False)
        super().__init__(**kwargs)

    def has_changed(self, initial, data):
        return False


class VersionedForm(forms.Form):
    """Base of a custom admin view's form: it carries the version of the row the view acts on.

    The view fills ``initial`` from :meth:`VersionedAdminMixin.version_initial` and, on POST,
    calls :meth:`VersionedAdminMixin.version_form_fresh` before acting.
    """

    _version = VersionField()


class VersionedAdminMixin:
    """Carry what the user saw on every form and action of a ``ModelAdmin``; refuse stale submits."""

    #: Concrete fields left out of the version (bookkeeping that changes without an editor).
    version_ignore_fields: tuple[str, ...] = ()
    #: Words for the keys of :meth:`version_extra_state` in a refusal.
    version_extra_labels: dict = {}

    # ---------------------------------------------------------------- what a version covers

    def version_state(self, request, obj) -> dict[str, str]:
        """Version of ``obj`` as its change form shows it: fields, m2m sets, inline rows, extras."""
        state = row_state(obj, ignore=self.version_ignore_fields)
        state.update(m2m_state(obj))
        for inline in self.get_inline_instances(request, obj):
            try:
                fk = _get_foreign_key(self.model, inline.model, fk_name=inline.fk_name)
            except ValueError:
                continue
            rows = inline.get_queryset(request).filter(**{fk.name: obj}).order_by("pk")
            for row in rows:
                state[f"{inline.model._meta.verbose_name}#{row.pk}"] = digest(sorted(row_state(row).items()))
        state.update(self.version_extra_state(request, obj))
        return state

    def version_row_state(self, obj) -> dict[str, str]:
        """Version of ``obj`` as a changelist row shows it (its concrete fields)."""
        return row_state(obj, ignore=self.version_ignore_fields)

    def version_extra_state(self, request, obj) -> dict[str, str]:
        """Extra state a change form saves besides the model's fields (override; digests)."""
        return {}

    def version_extra_changes(self, obj, since) -> list[Change]:
        """Changes of ``obj`` after ``since`` known to another record (override, e.g. audit events)."""
        return []

    def version_refusal(self, obj, keys, since, *, kept: bool = True) -> str:
        change = last_change(obj, since=since, extra=self.version_extra_changes(obj, since))
        return stale_message(obj=obj, keys=keys, change=change, kept=kept, extra_labels=self.version_extra_labels)

    def _version_locked(self, pk):
        return self.model._base_manager.select_for_update().filter(pk=pk).first()

    # ---------------------------------------------------------------- custom views

    def version_initial(self, request, obj, *, row: bool = True) -> dict:
        """``initial`` of a :class:`VersionedForm` showing ``obj`` (row state, or change-form state)."""
        state = self.version_row_state(obj) if row else self.version_state(request, obj)
        return {VERSION_FIELD: token_encode(state)}

    def version_form_fresh(self, request, form, obj, *, row: bool = True) -> bool:
        """Check a custom view's submitted version of ``obj`` under lock; call inside a transaction.

        Returns ``False`` and adds the refusal (who changed what, when) to the form's errors when
        ``obj`` changed since the page was rendered; the form then carries the current version,
        so the re-rendered page keeps the user's input and may be submitted again deliberately.
        """
        return self.version_posted_fresh(request, obj, form.data.get(VERSION_FIELD), row=row,
                                         on_stale=lambda message: form.add_error(None, message),
                                         form=form)

    def version_posted_fresh(self, request, obj, posted, *, row=True, on_stale=None, form=None) -> bool:
        """Like :meth:`version_form_fresh` for a hand-written form: ``on_stale(message)`` on refusal."""
        locked = self._version_locked(obj.pk)
        if locked is None:
            return True
        state = self.version_row_state(locked) if row else self.version_state(request, locked)
        if form is not None:
            form.data = form.data.copy()
            form.data[form.add_prefix(VERSION_FIELD)] = token_encode(state)
        if not posted:
            return True
        seen = token_decode(posted)
        keys = changed_keys(seen, state)
        if not keys:
            return True
        if on_stale is not None:
            on_stale(self.version_refusal(locked, keys, seen.at))
        return False

    # ---------------------------------------------------------------- change form

    def get_fields(self, request, obj=None):
        # The version is rendered once, at the top of the form, not as a row of a fieldset.
        return [f for f in super().get_fields(request, obj) if f != VERSION_FIELD]

    def get_form(self, request, obj=None, **kwargs):
        if kwargs.get("fields"):
            kwargs["fields"] = [f for f in kwargs["fields"] if f != VERSION_FIELD]
        form = super().get_form(request, obj, **kwargs)
        if obj is None or obj.pk is None:
            return form
        model_admin = self
        posting = request.method == "POST"

        class VersionedModelForm(form):
            # A hidden field of the form itself, so whatever renders or reads the form carries it.
            _version = VersionField()

            def clean(self):
                cleaned = super().clean()
                if posting:
                    model_admin._version_check_form(request, self)
                return cleaned

        VersionedModelForm.__name__ = VersionedModelForm.__qualname__ = form.__name__
        if not posting:
            VersionedModelForm.base_fields[VERSION_FIELD].initial = token_encode(self.version_state(request, obj))
        return VersionedModelForm

    def _version_check_form(self, request, form) -> None:
        locked = self._version_locked(form.instance.pk)
        if locked is None:
            return
        state = self.version_state(request, locked)
        form._version_token = token_encode(state)
        # The re-rendered page carries the current version (a second save is a deliberate one).
        form.data = form.data.copy()
        form.data[form.add_prefix(VERSION_FIELD)] = form._version_token
        posted = request.POST.get(VERSION_FIELD)
        if posted is None:
            return
        seen = token_decode(posted)
        keys = changed_keys(seen, state)
        if keys:
            raise ValidationError(self.version_refusal(locked, keys, seen.at), code="stale")

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        if change and obj is not None and obj.pk is not None:
            form = getattr(context.get("adminform"), "form", None)
            if form is not None and VERSION_FIELD in form.fields:
                context["stale_version_field"] = form[VERSION_FIELD]
                context["stale_version_token"] = form[VERSION_FIELD].value()
            else:
                context["stale_version_token"] = token_encode(self.version_state(request, obj))
        return super().render_change_form(request, context, add=add, change=change, form_url=form_url, obj=obj)

    # ---------------------------------------------------------------- changelist: rows, list edits

    def get_changelist_instance(self, request):
        cl = super().get_changelist_instance(request)
        cl.row_versions = [(obj.pk, token_encode(self.version_row_state(obj))) for obj in cl.result_list]
        return cl

    @staticmethod
    def _posted_row_versions(request) -> dict[str, str]:
        posted = {}
        for item in request.POST.getlist(ROW_VERSION_FIELD):
            pk, sep, token = item.rpartition(":")
            if sep:
                posted[pk] = token
        return posted

    def changelist_view(self, request, extra_context=None):
        if request.method != "POST":
            return super().changelist_view(request, extra_context)
        # List edits and actions check the rows under lock, so the whole POST is one transaction.
        with transaction.atomic(using=router.db_for_write(self.model)):
            return super().changelist_view(request, extra_context)

    def get_changelist_form(self, request, **kwargs):
        form = super().get_changelist_form(request, **kwargs)
        if request.method != "POST":
            return form
        posted = self._posted_row_versions(request)
        model_admin = self

        class VersionedRowForm(form):
            def clean(self):
                cleaned = super().clean()
                token = posted.get(str(self.instance.pk)) if self.instance.pk is not None else None
                if token is not None:
                    locked = model_admin._version_locked(self.instance.pk)
                    if locked is not None:
                        seen = token_decode(token)
                        keys = changed_keys(seen, model_admin.version_row_state(locked))
                        if keys:
                            raise ValidationError(model_admin.version_refusal(locked, keys, seen.at),
                                                  code="stale")
                return cleaned

        VersionedRowForm.__name__ = VersionedRowForm.__qualname__ = form.__name__
        return VersionedRowForm

    # ---------------------------------------------------------------- actions

    def get_actions(self, request):
        actions = super().get_actions(request)
        return {
            name: (self._versioned_action(func, name), action_name, description)
            for name, (func, action_name, description) in actions.items()
        }

    def _versioned_action(self, func, name):
        if getattr(func, "_versioned", False):
            return func
        model_admin = self

        @functools.wraps(func)
        def run(modeladmin, request, queryset):
            key = _SESSION_ACTION.format(label=model_admin.model._meta.label, action=name)
            posted = model_admin._posted_row_versions(request)
            if not posted:
                # The second step of an intermediate page (Django's ``post``, our ``confirm`` or
                # ``apply``): it carries no row versions, so check the rows the first step saw.
                posted = request.session.pop(key, None) or {}
            if not posted:
                return func(modeladmin, request, queryset)
            queryset, nothing_left = model_admin._version_filter_rows(request, queryset, posted)
            if nothing_left:
                return None
            response = func(modeladmin, request, queryset)
            if isinstance(response, TemplateResponse) and not request.POST.get("post"):
                request.session[key] = posted  # an intermediate page: its second step checks the same rows
            return response

        run._versioned = True
        return run

    def _version_filter_rows(self, request, queryset, posted):
        """Leave out the selected rows changed since listed (or never listed); warn for each."""
        select_across = request.POST.get("select_across") in ("1", "True", "true")
        if select_across:
            # Rows not shown on the page match the filter as it is now; the listed ones are checked.
            pks = list(queryset.filter(pk__in=list(posted)).values_list("pk", flat=True))
        else:
            pks = list(queryset.values_list("pk", flat=True))
        stale = []
        for row in self.model._base_manager.select_for_update().filter(pk__in=pks).order_by("pk"):
            token = posted.get(str(row.pk))
            if token is None:
                stale.append(row.pk)
                self.message_user(request, _not_listed_message(row), messages.WARNING)
                continue
            seen = token_decode(token)
            keys = changed_keys(seen, self.version_row_state(row))
            if keys:
                stale.append(row.pk)
                self.message_user(request, self.version_refusal(row, keys, seen.at, kept=False),
                                  messages.WARNING)
        if not stale:
            return queryset, False
        queryset = queryset.exclude(pk__in=stale)
        return queryset, not queryset.exists()

    # ---------------------------------------------------------------- delete page

    def delete_view(self, request, object_id, extra_context=None):
        key = _SESSION_DELETE.format(label=self.model._meta.label, pk=object_id)
        if request.method == "POST":
            with transaction.atomic(using=router.db_for_write(self.model)):
                token = request.session.pop(key, None)
                obj = self.get_object(request, unquote(object_id))
                locked = self._version_locked(obj.pk) if obj is not None and token else None
                if locked is not None:
                    seen = token_decode(token)
                    keys = changed_keys(seen, self.version_row_state(locked))
                    if keys:
                        self.message_user(request, self.version_refusal(locked, keys, seen.at, kept=False),
                                          messages.ERROR)
                        return HttpResponseRedirect(_change_url(self, locked))
                return super().delete_view(request, object_id, extra_context)
        response = super().delete_view(request, object_id, extra_context)
        obj = getattr(response, "context_data", {}).get("object") if hasattr(response, "context_data") else None
        if obj is not None and obj.pk is not None:
            request.session[key] = token_encode(self.version_row_state(obj))
        return response


def _not_listed_message(row) -> str:
    return _("「%s」不在您看到的列表中,未对其执行操作。") % row


def _change_url(model_admin, obj) -> str:
    opts = model_admin.model._meta
    try:
        return reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[obj.pk])
    except NoReverseMatch:
        return reverse("admin:index")

