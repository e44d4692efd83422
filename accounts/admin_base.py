"""The one base of every admin of the site, so site-wide admin rules live in one place.

Every ``ModelAdmin`` and inline registered by this project derives from :class:`StaffModelAdmin`,
:class:`StaffTabularInline` or :class:`StaffAdminMixin` (third-party admins are re-registered on
it); ``tests/test_admin_base.py`` fails when one does not. Rules that hold for every admin page
(which URL lookups a changelist accepts, optimistic locking of forms and actions, …) are added
here as mixins, not per admin.
"""

from django.contrib import admin
from django.contrib.admin import helpers
from django.contrib.admin.filters import FieldListFilter, SimpleListFilter
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.admin.utils import get_fields_from_path, quote
from django.contrib.admin.views.main import ChangeList
from django.contrib.admin.widgets import url_params_from_lookup_dict
from django.core.exceptions import BadRequest, ValidationError
from django.db.models import Field
from django.urls import NoReverseMatch, reverse
from django.utils.html import format_html
from django.utils.translation import gettext
from django.utils.translation import gettext as _

from accounts.admin_lists import CappedPaginator
from accounts.admin_versioning import VersionedAdminMixin

# Django's own msgid (translated by Django's catalogue, not the site's): the row checkbox's label.
DJANGO_ROW_CHECKBOX_LABEL = "Select this object for an action - {}"

# (admin class, model, field path, filter class) → the query parameters of that field filter.
_FIELD_FILTER_PARAMETERS: dict[tuple, frozenset] = {}


class ListedLookupsOnlyMixin:
    """A changelist accepts as URL lookups only the parameters of its own filters (issue 9 §1).

    Django lets any lookup on a model's own fields through (``?citizen_contact__startswith=138``,
    ``__regex``), which turns a masked column into an oracle. Here the allowed parameters are
    exactly those the admin's ``list_filter`` entries and ``date_hierarchy`` read (plus the
    ``limit_choices_to`` lookups of raw-id pop-ups); any other lookup, on a local or a related
    field, answers 400. Ordering (``?o=``) only reaches the columns of ``list_display``, and
    malformed filter values (``?unit=abc``, ``?submitted_at__year=9999&…``) answer 400 with the
    reason instead of a server error.
    """

    def listed_lookups(self, request) -> set[str]:
        """Return the query parameters this changelist's filters read, for ``request``'s user."""
        cache = request.__dict__.setdefault("_listed_lookups", {})
        if id(self) in cache:
            return cache[id(self)]
        allowed: set[str] = set()
        for item in self.get_list_filter(request):
            if callable(item):
                if (isinstance(item, type) and issubclass(item, SimpleListFilter)
                        and item.expected_parameters is SimpleListFilter.expected_parameters):
                    # Its one parameter, without building it (its lookups may query: issue 11 §3).
                    allowed.add(item.parameter_name)
                    continue
                spec = item(request, {}, self.model, self)
            else:
                field, filter_class = item if isinstance(item, (list, tuple)) else (item, FieldListFilter.create)
                field_path = None
                if not isinstance(field, Field):
                    field_path = field
                    allowed.add(field_path)  # ``?state=x`` is ``?state__exact=x`` of the listed filter
                    field = get_fields_from_path(self.model, field_path)[-1]
                # A field filter's parameters depend on the field alone: built (and its choices
                # queried) once per process, not on every filtered request.
                key = (type(self).__name__, self.model._meta.label, field_path or field.name, filter_class)
                if key not in _FIELD_FILTER_PARAMETERS:
                    spec = filter_class(field, request, {}, self.model, self, field_path=field_path)
                    _FIELD_FILTER_PARAMETERS[key] = frozenset(spec.expected_parameters())
                allowed.update(_FIELD_FILTER_PARAMETERS[key])
                continue
            allowed.update(spec.expected_parameters())
        if self.date_hierarchy:
            allowed.update(f"{self.date_hierarchy}__{part}" for part in ("year", "month", "day"))
        cache[id(self)] = allowed
        return allowed

    def lookup_allowed(self, lookup, value, request=None):
        for fk_lookup in self.model._meta.related_fkey_lookups:  # raw-id pop-ups (limit_choices_to)
            fk_lookup = fk_lookup() if callable(fk_lookup) else fk_lookup
            if (lookup, value) in url_params_from_lookup_dict(fk_lookup).items():
                return True
        if request is None:
            return False
        return lookup in self.listed_lookups(request)

    def get_changelist_instance(self, request):
        try:
            return super().get_changelist_instance(request)
        except (IncorrectLookupParameters, ValidationError, ValueError, TypeError, OverflowError) as exc:
            raise BadRequest(_("筛选参数不正确:%s") % exc) from exc


class RowLinksChangeList(ChangeList):
    """A changelist whose rows link to their page with the list's filters written once, not parsed per row.

    Django's ``items_for_result`` passes every row's link through ``add_preserved_filters``, which
    parses the list's query string and resolves the row's URL against every admin pattern, 50
    times a page (a fifth of a filtered case list's rendering, issue 11 §3). Here the link is the
    row's URL followed by the same ``_changelist_filters=…`` Django would add, and the per-row
    pass sees no filters to merge. The HTML is the same (``tests/test_list_scale.py``).
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.row_filters = self.preserved_filters
        self.preserved_filters = ""

    # Stands for the primary key in the row URL written once per list (letters only: every URL
    # pattern's converter takes it and ``reverse`` leaves it as it is).
    PK_STAND_IN = "cwrowpkstandin"

    def url_for_result(self, result):
        url = self._row_url(result)
        if not self.row_filters:
            return url
        return f"{url}{'&' if '?' in url else '?'}{self.row_filters}"

    def _row_url(self, result) -> str:
        """The row's change URL as ``ChangeList.url_for_result`` gives it, resolved once per list.

        ``reverse`` walks the admin's URL patterns for every row (a twentieth of the list's
        rendering); here the first row's URL is reversed twice, with its key and with a stand-in,
        and the others are the stand-in's URL with their (admin-quoted) key put in. A key that
        ``reverse`` would escape, or a pattern the stand-in does not fit, is reversed as Django does.
        """
        quoted = str(quote(getattr(result, self.pk_attname)))
        template = self.__dict__.get("_row_url_template")
        if template is None:
            url = super().url_for_result(result)
            template = False
            if quoted.isascii() and quoted.replace("_", "").replace("-", "").replace(".", "").isalnum():
                try:
                    stand_in = reverse(f"admin:{self.opts.app_label}_{self.opts.model_name}_change",
                                       args=(self.PK_STAND_IN,), current_app=self.model_admin.admin_site.name)
                except NoReverseMatch:
                    stand_in = ""
                if stand_in.count(self.PK_STAND_IN) == 1 and stand_in.replace(self.PK_STAND_IN, quoted) == url:
                    template = stand_in.split(self.PK_STAND_IN)
            self._row_url_template = template
            return url
        if template and quoted.isascii() and quoted.replace("_", "").replace("-", "").replace(".", "").isalnum():
            return f"{template[0]}{quoted}{template[1]}"
        return super().url_for_result(result)


class StaffAdminMixin(ListedLookupsOnlyMixin, VersionedAdminMixin):
    """Behaviour shared by every admin of the site (see the module docstring).

    :class:`ListedLookupsOnlyMixin`: a changelist accepts only its own filters' lookups.
    :class:`~accounts.admin_versioning.VersionedAdminMixin`: every change form, list edit, action
    and delete carries the version the user saw; a stale submit is refused, naming who changed what.
    :class:`~accounts.admin_lists.CappedPaginator`: a changelist counts up to
    ``CASEWORK_LIST_COUNT_CAP`` rows and says "1000+" beyond (issue 11 §3).
    """

    paginator = CappedPaginator

    def get_paginator(self, request, queryset, per_page, orphans=0, allow_empty_first_page=True):
        """Django's, and a :class:`CappedPaginator` reads the drill-down's dates with its count."""
        paginator = super().get_paginator(request, queryset, per_page, orphans, allow_empty_first_page)
        # Only for the changelist's own rows (the history page pages log entries with it too).
        if isinstance(paginator, CappedPaginator) and self.date_hierarchy and queryset.model is self.model:
            paginator.dates_field = self.date_hierarchy
        return paginator

    def get_changelist(self, request, **kwargs):
        return RowLinksChangeList

    def action_checkbox(self, obj):
        """The changelist's row checkbox: Django's markup, written directly.

        Django renders a ``CheckboxInput`` through the form renderer's templates for every row; at
        50 rows that is a third of the case list's rendering time (issue 11 §3). The HTML is the
        same (``tests/test_list_scale.py`` compares it with Django's).
        """
        label = format_html(gettext(DJANGO_ROW_CHECKBOX_LABEL), str(obj))
        return format_html('<input type="checkbox" name="{}" value="{}" class="action-select" aria-label="{}">',
                           helpers.ACTION_CHECKBOX_NAME, str(obj.pk), label)


class StaffModelAdmin(StaffAdminMixin, admin.ModelAdmin):
    """Base of every ``ModelAdmin`` of the site."""


class StaffTabularInline(StaffAdminMixin, admin.TabularInline):
    """Base of every tabular inline of the site."""


class SuperuserRecordAdminMixin:
    """A record the system writes (outbox rows, verification runs): superusers read it, nobody
    adds, edits or deletes it in the admin."""

    def has_module_permission(self, request):
        return request.user.is_superuser

    def has_view_permission(self, request, obj=None):
        return request.user.is_superuser

    def has_change_permission(self, request, obj=None):
        return False

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


def admin_adopt(model, *, extra: tuple[type, ...] = ()) -> None:
    """Re-register a third-party model's admin (and its inlines) on :class:`StaffAdminMixin`, keeping its options.

    Args:
        model: a model whose admin another app registered (e.g. ``auth.Group``). Its app must come
            before the caller's in ``INSTALLED_APPS`` so that its admin is registered already.
        extra: mixins put before the adopted admin (e.g. to make its records read-only).

    Raises:
        django.contrib.admin.exceptions.NotRegistered: the model has no admin yet.
    """
    current = type(admin.site.get_model_admin(model))
    if issubclass(current, StaffAdminMixin):
        return
    inlines = [
        inline if issubclass(inline, StaffAdminMixin)
        else type(inline.__name__, (StaffAdminMixin, inline), {})
        for inline in current.inlines
    ]
    admin.site.unregister(model)
    admin.site.register(model, type(current.__name__, (*extra, StaffAdminMixin, current), {"inlines": inlines}))
