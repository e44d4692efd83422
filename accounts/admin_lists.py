"""Lists at a million rows (issue 11 §3): a capped count and a date drill-down without scans, for every admin.

Django's changelist counts every matching row for its paginator and, for ``date_hierarchy``, reads
the first and last date and then every distinct year, month or day of the matching rows: three
statements that each read every visible case. Here:

Every admin of the site uses both (``accounts.admin_base.StaffAdminMixin.paginator`` and the
``date_hierarchy``/``pagination`` blocks of ``templates/admin/change_list.html``).

* :class:`CappedPaginator` counts at most ``CASEWORK_LIST_COUNT_CAP`` + 1 rows (in the list's own
  order, so PostgreSQL walks the index of the page); past the cap the list says "1000+" and pages
  on with 上一页/下一页 links instead of numbered pages.
* :func:`date_hierarchy_context`: a list of at most the cap rows has its dates read with its count
  (``CappedPaginator.dates``) and the drill-down costs no statement; a longer list takes the first
  and last date from the index and tells which years, months or days hold a visible case with one
  statement of probes, one per bucket, each stopping at its first row.
"""

import bisect
import calendar as pycalendar
import datetime
import html

from django.conf import settings
from django.contrib.admin.templatetags import admin_list
from django.contrib.admin.templatetags.admin_urls import add_preserved_filters
from django.contrib.admin.utils import (
    display_for_field,
    display_for_value,
    get_fields_from_path,
    lookup_field,
)
from django.core.exceptions import ObjectDoesNotExist
from django.core.paginator import EmptyPage, Page, PageNotAnInteger, Paginator
from django.db import connections
from django.db.models import DateField, DateTimeField, F, ForeignKey, ManyToOneRel, Max, Min, TimeField
from django.db.models.functions import TruncDate
from django.urls import NoReverseMatch
from django.utils import formats, timezone
from django.utils.dateparse import parse_date, parse_datetime
from django.utils.functional import cached_property
from django.utils.safestring import mark_safe
from django.utils.text import capfirst
from django.utils.translation import gettext

from accounts.counting import CappedCount, count_capped, list_count_cap, ordered_by_columns


class CappedPaginator(Paginator):
    """A paginator whose count stops at the cap (``count`` is a ``CappedCount``).

    Below the cap it is Django's paginator. Past it, any page number is accepted and a page past
    the last row raises ``EmptyPage`` (the changelist answers with its "invalid page" redirect).
    """

    # The changelist's ``date_hierarchy`` field (set by ``StaffAdminMixin.get_paginator``), or None.
    dates_field: str | None = None
    # After ``count``: the distinct local dates (sorted) of the ``dates_field`` of the rows when the
    # list has at most the cap rows, read by the count's own statement, else None. The date
    # drill-down tells its years, months or days from these instead of reading the rows again (a
    # filtered list such as 超期 otherwise read its matching rows three times: count, first and
    # last date, buckets; issue 11 §3).
    dates: list | None = None

    @cached_property
    def count(self):
        if self.dates_field:
            return self._count_and_dates()
        return count_capped(queryset=self.object_list, cap=list_count_cap(), keep_order=True)

    def _count_and_dates(self):
        cap = list_count_cap()
        qs = self.object_list
        if not ordered_by_columns(qs):
            qs = qs.order_by()
        field = self.dates_field
        # Each row's local date, grouped by the database: the first cap + 1 rows counted, and only
        # their distinct days come back (a thousand timestamps read and converted to local time cost
        # more than the statement, ~30 ms of a filtered list).
        day = TruncDate(field, tzinfo=timezone.get_current_timezone()) if _is_datetime_field(qs, field) else F(field)
        sql, params = qs.values(cw_day=day)[: cap + 1].query.get_compiler(using=qs.db).as_sql()
        with connections[qs.db].cursor() as cursor:
            cursor.execute(f"SELECT cw.cw_day, COUNT(*) FROM ({sql}) cw GROUP BY cw.cw_day", params)
            days = cursor.fetchall()
        count = CappedCount(sum(n for _day, n in days), cap=cap)
        if not count.capped:
            self.dates = sorted(parse_date(d) if isinstance(d, str) else d for d, _n in days if d is not None)
        return count

    @property
    def capped(self) -> bool:
        return getattr(self.count, "capped", False)

    def validate_number(self, number):
        if not self.capped:
            return super().validate_number(number)
        try:
            number = int(number)
        except (TypeError, ValueError) as exc:
            raise PageNotAnInteger(self.error_messages["invalid_page"]) from exc
        if number < 1:
            raise EmptyPage(self.error_messages["min_page"])
        return number

    def page(self, number):
        if not self.capped:
            return super().page(number)
        number = self.validate_number(number)
        bottom = (number - 1) * self.per_page
        rows = list(self.object_list[bottom: bottom + self.per_page])
        if not rows and number > 1:
            raise EmptyPage(self.error_messages["no_results"])
        return Page(rows, number, self)


# Bounds no list filters on (two instants of the year 2, or two of its dates), compiled into the
# drill-down's probe in their place and then replaced by each bucket's (``_buckets_present``).
_PROBE_MARKERS = {
    True: (datetime.datetime(2, 1, 2, 0, 0, 0, 271828, tzinfo=datetime.UTC),
           datetime.datetime(2, 1, 2, 0, 0, 0, 314159, tzinfo=datetime.UTC)),
    False: (datetime.date(2, 1, 2), datetime.date(2, 1, 3)),
}


def _aware(d: datetime.date) -> datetime.datetime:
    return timezone.make_aware(datetime.datetime.combine(d, datetime.time.min), timezone.get_current_timezone())


def _is_datetime_field(queryset, field: str) -> bool:
    return isinstance(get_fields_from_path(queryset.model, field)[-1], DateTimeField)


def _local_date(value) -> datetime.date:
    if isinstance(value, datetime.datetime):
        return timezone.localtime(value).date() if timezone.is_aware(value) else value.date()
    return value


def _buckets_present(queryset, field: str, buckets: list[tuple[datetime.date, datetime.date]], *,
                     few: bool = False) -> list[bool]:
    """Tell, in one statement, which ``[start, end)`` local-date buckets hold a row of ``queryset``.

    With ``few`` (the list counted at most the cap, ``CASEWORK_LIST_COUNT_CAP`` rows) the dates of
    the list are read once, into a ``WITH`` table, and each bucket looks there; else each bucket
    probes the index (below).
    """
    if not buckets:
        return []
    parts, params = [], []
    bound = _aware if _is_datetime_field(queryset, field) else (lambda d: d)
    connection = connections[queryset.db]
    model_field = get_fields_from_path(queryset.model, field)[-1]
    if few:
        # A list chosen by a few ids (the 延期待批 queue: ``id = ANY(ARRAY(…))``) would otherwise
        # fetch all its cases again for every bucket (issue 11 §3).
        sql, sql_params = queryset.order_by().values(field).query.sql_with_params()
        for start, end in buckets:
            parts.append("EXISTS (SELECT 1 FROM cw_dates WHERE v >= %s AND v < %s)")
            params.extend(model_field.get_db_prep_value(bound(d), connection) for d in (start, end))
        with connection.cursor() as cursor:
            cursor.execute(f"WITH cw_dates(v) AS ({sql}) SELECT " + ", ".join(parts), [*sql_params, *params])
            return [bool(v) for v in cursor.fetchone()]
    # Ordered by the field: the probe reads the range off the index and stops at its first row
    # (unordered, PostgreSQL may expect a sequential scan to meet a row early, and read a year).
    # A scalar subquery, not EXISTS: PostgreSQL drops the ORDER BY inside an EXISTS.
    # The probe is compiled once, with two marker bounds that each bucket's own replace: compiling
    # the list's query (its access rule included) once per day of a month cost a tenth of the
    # list page's CPU (issue 11 §3).
    markers = _PROBE_MARKERS[bound is _aware]
    probe = queryset.order_by(field).filter(**{f"{field}__gte": markers[0], f"{field}__lt": markers[1]})
    sql, sql_params = probe.values(field)[:1].query.sql_with_params()
    prepared = [model_field.get_db_prep_value(m, connection) for m in markers]
    slots = [[i for i, p in enumerate(sql_params) if p == m] for m in prepared]
    once = all(len(s) == 1 for s in slots)  # else (a filter naming a marker) compiled per bucket
    for start, end in buckets:
        if once:
            bucket_params = list(sql_params)
            for (slot,), d in zip(slots, (start, end), strict=True):
                bucket_params[slot] = model_field.get_db_prep_value(bound(d), connection)
            bucket_sql = sql
        else:
            bucket_probe = queryset.order_by(field).filter(**{f"{field}__gte": bound(start),
                                                               f"{field}__lt": bound(end)})
            bucket_sql, bucket_params = bucket_probe.values(field)[:1].query.sql_with_params()
        parts.append(f"({bucket_sql}) IS NOT NULL")
        params.extend(bucket_params)
    with connection.cursor() as cursor:
        cursor.execute("SELECT " + ", ".join(parts), params)
        return [bool(v) for v in cursor.fetchone()]


def _bounds(queryset, field: str, *, few: bool = False) -> dict:
    """Return ``{"first": …, "last": …}``, the smallest and largest ``field`` of ``queryset`` (one statement).

    Two ordered ``LIMIT 1`` probes rather than ``MIN``/``MAX``: PostgreSQL answers ``MIN`` from the
    index only when the filter is a plain condition on the table; behind an anti-join (the 回访 queue)
    or an ``OR`` it aggregated every matching row (60,000 at a million cases). Ordered, the probe
    reads the index from either end and stops at the first matching row. With ``few`` (the list
    counted at most the cap) it is ``MIN``/``MAX`` over those rows, read once.
    """
    if few:
        return queryset.order_by().aggregate(first=Min(field), last=Max(field))
    parts, params = [], []
    for order in (field, f"-{field}"):
        sql, sql_params = queryset.order_by(order).values(field)[:1].query.sql_with_params()
        parts.append(f"({sql})")
        params.extend(sql_params)
    with connections[queryset.db].cursor() as cursor:
        cursor.execute("SELECT " + ", ".join(parts), params)
        first, last = cursor.fetchone()
    datetimes = _is_datetime_field(queryset, field)
    return {"first": _from_db(first, datetimes), "last": _from_db(last, datetimes)}


def _from_db(value, datetimes: bool):
    """A date or datetime read by a raw cursor (SQLite hands back naive UTC datetimes, or text)."""
    if isinstance(value, str):
        value = parse_datetime(value) if datetimes else parse_date(value[:10])
    if (datetimes and isinstance(value, datetime.datetime) and settings.USE_TZ
            and timezone.is_naive(value)):
        value = timezone.make_aware(value, datetime.UTC)
    return value


def date_hierarchy_context(cl) -> dict | None:
    """Return the drill-down's context, or None for a date out of range (``?…__year=9999&…__month=12``)."""
    try:
        return _date_hierarchy_context(cl)
    except (ValueError, OverflowError):
        return None


def _date_hierarchy_context(cl) -> dict | None:
    """Return the context of ``admin/date_hierarchy.html`` for changelist ``cl`` without a scan.

    The same choices as Django's ``date_hierarchy`` tag (years, the months of a year, the days of a
    month, in the current time zone), each shown only when a row of the list falls in it.
    """
    field_name = cl.date_hierarchy
    if not field_name:
        return None
    year_field, month_field, day_field = (f"{field_name}__{p}" for p in ("year", "month", "day"))
    field_generic = f"{field_name}__"
    try:
        year = int(cl.params[year_field]) if cl.params.get(year_field) else None
        month = int(cl.params[month_field]) if cl.params.get(month_field) else None
        day = int(cl.params[day_field]) if cl.params.get(day_field) else None
    except (TypeError, ValueError):
        return None
    qs = cl.queryset
    # The list's capped count (accounts.counting) was taken before: at most the cap, the list's
    # rows are few and are read once for the drill-down rather than probed bucket by bucket. An
    # admin may say so of a list it knows to be small (``cl.date_hierarchy_few``, e.g. the case
    # queues chosen by the ids of a few open rows of another table, which every probe would read again).
    count = getattr(cl, "result_count", None)
    few = getattr(count, "capped", None) is False or bool(getattr(cl, "date_hierarchy_few", False))

    def link(filters):
        return cl.get_query_string(filters, [field_generic])

    # The list's dates, read with its count (CappedPaginator.dates): no statement at all.
    read = getattr(getattr(cl, "paginator", None), "dates", None)
    local = sorted({_local_date(v) for v in read if v is not None}) if read is not None else None

    def bounds_of() -> dict:
        if local is None:
            return _bounds(qs, field_name, few=few)
        return {"first": local[0] if local else None, "last": local[-1] if local else None}

    def present_in(buckets):
        if local is None:
            return _buckets_present(qs, field_name, buckets, few=few)
        firsts = (bisect.bisect_left(local, start) for start, _end in buckets)
        return [i < len(local) and local[i] < end for i, (_start, end) in zip(firsts, buckets, strict=True)]

    if year is None:
        bounds = bounds_of()
        if not bounds["first"]:
            return {"show": True, "choices": []}
        first, last = (_local_date(bounds[k]) for k in ("first", "last"))
        if first.year == last.year:
            year = first.year
            if first.month == last.month:
                month = first.month
        else:
            years = list(range(first.year, last.year + 1))
            present = present_in([(datetime.date(y, 1, 1), datetime.date(y + 1, 1, 1)) for y in years])
            return {"show": True, "choices": [{"link": link({year_field: str(y)}), "title": str(y)}
                                              for y, ok in zip(years, present, strict=True) if ok]}
    if year and month and day:
        the_day = datetime.date(year, month, day)
        return {"show": True,
                "back": {"link": link({year_field: year, month_field: month}),
                         "title": capfirst(formats.date_format(the_day, "YEAR_MONTH_FORMAT"))},
                "choices": [{"title": capfirst(formats.date_format(the_day, "MONTH_DAY_FORMAT"))}]}
    if year and month:
        n_days = pycalendar.monthrange(year, month)[1]
        days = [datetime.date(year, month, d) for d in range(1, n_days + 1)]
        present = present_in([(d, d + datetime.timedelta(days=1)) for d in days])
        return {"show": True,
                "back": {"link": link({year_field: year}), "title": str(year)},
                "choices": [{"link": link({year_field: year, month_field: month, day_field: d.day}),
                             "title": capfirst(formats.date_format(d, "MONTH_DAY_FORMAT"))}
                            for d, ok in zip(days, present, strict=True) if ok]}
    months = [datetime.date(year, m, 1) for m in range(1, 13)]
    present = present_in([(m, datetime.date(year + (m.month == 12), m.month % 12 + 1, 1)) for m in months])
    return {"show": True,
            "back": {"link": link({}), "title": _all_dates_title()},
            "choices": [{"link": link({year_field: year, month_field: m.month}),
                         "title": capfirst(formats.date_format(m, "YEAR_MONTH_FORMAT"))}
                        for m, ok in zip(months, present, strict=True) if ok]}


def _all_dates_title():
    return gettext("All dates")  # Django's own string, translated by Django's catalogue


# ---------------------------------------------------------------- the rows of a changelist


def result_rows(cl) -> list:
    """The rows of changelist ``cl`` as Django's ``results(cl)`` gives them, built faster.

    Django's ``items_for_result`` decides each cell's class, link and empty text anew for every
    row, and writes each cell through ``format_html`` and ``conditional_escape`` (lazy-aware
    wrappers): a quarter of a case list's request (~24 ms of 90 at 50 rows, issue 11 §3). Here
    what depends on the column only is decided once per list and each cell is one escaped
    f-string; the values are still read with ``lookup_field`` and shown with
    ``display_for_field`` / ``display_for_value``, so the HTML is Django's, cell for cell
    (``tests/test_list_rows.py`` compares the two on every registered admin). A list with a
    formset (``list_editable``) is left to Django.

    Returns:
        a list of ``ResultList`` (one per row of ``cl.result_list``), as the
        ``change_list_results.html`` template reads them.
    """
    if cl.formset:
        return list(admin_list.results(cl))
    columns = _row_columns(cl)
    context = {"preserved_filters": cl.preserved_filters, "opts": cl.opts}
    pk_attname = str(cl.to_field) if cl.to_field else cl.lookup_opts.pk.attname
    rows = []
    for result in cl.result_list:
        cells = []
        for name, base, link, tag, empty in columns:
            cells.append(_cell(cl, result, name, base, link, tag, empty, context, pk_attname))
        rows.append(admin_list.ResultList(None, cells))
    return rows


def _row_columns(cl) -> list[tuple]:
    """Per column of ``cl.list_display``: (name, its class, linked, th or td, empty value text)."""
    empty = cl.model_admin.get_empty_value_display()
    links = cl.list_display_links
    first, columns = True, []
    for index, name in enumerate(cl.list_display):
        if links is None:
            link = False
        elif first and not links:
            link = True
        else:
            link = name in links
        tag = ("th" if first else "td") if link else "td"
        if link:
            first = False
        columns.append((name, f"field-{admin_list._coerce_field_name(name, index)}", link, tag, empty))
    return columns


def _escaped(value) -> str:
    """``conditional_escape(value)`` without its lazy-string wrapper (called for every cell)."""
    if hasattr(value, "__html__"):
        return value.__html__()
    return html.escape(str(value))


def _preserved(context: dict, url: str) -> str:
    """``add_preserved_filters(context, url)``; with no filters to merge (the rows' links carry them
    already, ``RowLinksChangeList``) it only re-encodes the query, the same for every row: once."""
    if context.get("preserved_filters"):
        return add_preserved_filters(context, url)
    path, mark, query = url.partition("?")
    if "#" in url or not url.startswith("/") or url.startswith("//"):
        return add_preserved_filters(context, url)
    if not mark:  # nothing to re-encode: a path stays as it is
        return url
    memo = context.setdefault("_queries", {})
    if query not in memo:
        memo[query] = add_preserved_filters(context, "/?" + query)[1:]
    return path + memo[query]


def _cell(cl, result, name, base, link, tag, empty, context, pk_attname) -> str:
    """One cell of ``items_for_result`` (Django 5.2), the same HTML."""
    classes = base
    try:
        f, attr, value = lookup_field(name, result, cl.model_admin)
    except ObjectDoesNotExist:
        result_repr = empty
    else:
        empty = getattr(attr, "empty_value_display", empty)
        if isinstance(value, str) and value.strip() == "":
            value = ""
        if f is None or f.auto_created:
            if name == "action_checkbox":
                classes = "action-checkbox"
            boolean = getattr(attr, "boolean", False)
            if isinstance(attr, property) and hasattr(attr, "fget"):
                boolean = getattr(attr.fget, "boolean", False)
            result_repr = display_for_value(value, empty, boolean)
            if isinstance(value, (datetime.date, datetime.time)):
                classes += " nowrap"
        else:
            if isinstance(f.remote_field, ManyToOneRel):
                field_value = getattr(result, f.name)
                result_repr = empty if field_value is None else field_value
            else:
                result_repr = display_for_field(value, f, empty, avoid_link=link)
            if isinstance(f, (DateField, TimeField, ForeignKey)):
                classes += " nowrap"
    if not link:
        return mark_safe(f'<td class="{classes}">{_escaped(result_repr)}</td>')
    try:
        url = cl.url_for_result(result)
    except NoReverseMatch:
        inner = _escaped(result_repr)
    else:
        url = _preserved(context, url)
        popup = f' data-popup-opener="{_escaped(result.serializable_value(pk_attname))}"' if cl.is_popup else ""
        inner = f'<a href="{_escaped(url)}"{popup}>{_escaped(result_repr)}</a>'
    return mark_safe(f'<{tag} class="{classes}">{inner}</{tag}>')
