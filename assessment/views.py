"""Thin admin views over :mod:`assessment.selectors`: report, drill-down, export, dashboard, articles.

Every figure is computed for the events attributed to the units in the reader's scope
(``assessment_scope_unit_ids``; superusers and city-wide staff: every unit), so a handler sees his
unit's numbers, the same as a superuser sees for that unit. A drill-down lists the cases behind
a number that the reader may open and counts the others without revealing them.
Rule of every page here (assessment/rules.py): :func:`~assessment.rules.user_reads_assessment` —
a role that reads cases; staff without one get 403.
"""

from __future__ import annotations

from datetime import date, datetime
from functools import wraps

from django.contrib import admin
from django.core.exceptions import BadRequest, PermissionDenied
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import urlencode
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from accounts.models import Unit
from assessment.exports import assessment_workbook
from assessment.facts import AssessmentFacts, Period
from assessment.figures_store import figures_kept
from assessment.models import KeptFigures
from assessment.office_metrics import (
    OFFICE_METRIC_DEFINITIONS,
    OFFICE_METRIC_LABELS,
    OFFICE_METRICS,
    ROW_METRICS,
    office_figures,
    office_figures_by_month,
    office_figures_load,
    office_metric_case_ids,
    office_row_label,
)
from assessment.rules import user_reads_assessment
from assessment.selectors import (
    METRIC_DEFINITIONS,
    METRIC_LABELS,
    MIN_VOLUME,
    RATE_METRICS,
    assessment_annual,
    assessment_scope_unit_ids,
    dashboard_data,
    knowledge_articles_for_case,
    knowledge_articles_search,
    metric_case_ids,
    unit_groups,
)
from casework import spreadsheets
from casework.models import Case
from casework.privacy import user_may_see_personal_numbers
from casework.selectors import cases_visible_to, user_can_see_case

KINDS = {"": gettext_lazy("单位"), "district": gettext_lazy("按县市区分局"), "police_type": gettext_lazy("按警种")}
COLUMNS = (*RATE_METRICS, "reply_working_days", "supervision_notices", "manual_notices", "referrals",
           "poor_handling_referrals", "extensions")


def _readers_only(view):
    """403 unless the user may read the assessment pages (:func:`~assessment.rules.user_reads_assessment`)."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args, **kwargs):
        if not user_reads_assessment(user=request.user):
            raise PermissionDenied
        return view(request, *args, **kwargs)

    return wrapper


def _scope(request: HttpRequest) -> list[int] | None:
    """The reader's units (None: every unit); see ``assessment_scope_unit_ids``."""
    return assessment_scope_unit_ids(user=request.user)


def _definitions() -> list[tuple[str, str]]:
    return [(METRIC_LABELS[n], METRIC_DEFINITIONS[n]) for n in COLUMNS]


def _as_of(request: HttpRequest) -> datetime:
    """The report time: ``?as_of=`` (ISO, aware) when given, so a figure can be re-read as it was, else now."""
    raw = request.GET.get("as_of")
    if not raw:
        return timezone.now()
    try:
        value = datetime.fromisoformat(raw)
        if value.tzinfo is None or value.year not in YEARS:
            raise ValueError(raw)
    except ValueError as exc:
        raise BadRequest(_("日期格式不正确。")) from exc
    return min(value, timezone.now())


# Years a report may cover: outside them a period is a typing error, not a question (issue 9 §3).
YEARS = range(2000, 2101)


def _params(request: HttpRequest) -> tuple[Period, str, dict]:
    """Read the period (``year`` or ``start``/``end`` dates) and grouping ``kind`` from the query.

    Raises:
        BadRequest: (400) a malformed or out-of-range year or date, a start after the end, or an
            unknown ``kind`` — with the reason, never a server error.
    """
    today = timezone.localdate()
    try:
        if request.GET.get("start") and request.GET.get("end"):
            first, last = date.fromisoformat(request.GET["start"]), date.fromisoformat(request.GET["end"])
            if first.year not in YEARS or last.year not in YEARS or first > last:
                raise ValueError(request.GET["start"])
            period = Period.days(first, last)
            keep = {"start": first.isoformat(), "end": last.isoformat()}
        else:
            year = int(request.GET.get("year") or today.year)
            if year not in YEARS:
                raise ValueError(year)
            period = Period.year(year)
            keep = {"year": year}
    except ValueError as exc:
        raise BadRequest(_("日期或年度不正确(年度须在 %(a)d–%(b)d 之间,开始日期不晚于结束日期)。")
                         % {"a": YEARS.start, "b": YEARS.stop - 1}) from exc
    kind = request.GET.get("kind", "")
    if kind not in KINDS:
        raise BadRequest(_("未知的汇总方式。"))
    keep["kind"] = kind
    if request.GET.get("as_of"):
        keep["as_of"] = request.GET["as_of"]
    return period, kind, keep


def _cell(name: str, value) -> dict:
    """One figure as shown: its text, numerator/denominator, and ``small`` below MIN_VOLUME."""
    if value is None:
        return {"text": "—", "value": None}
    if name in COLUMNS[:5]:
        return {"text": "—" if value.value is None else f"{value.value:.1%}", "num": value.num, "den": value.den,
                "value": value.value, "small": value.den < MIN_VOLUME}
    if name == "reply_working_days":
        return {"text": "—" if value.value is None else f"{value.value:.1f}", "num": value.count, "den": value.count,
                "value": value.value, "small": value.count < MIN_VOLUME}
    return {"text": str(value), "num": value, "den": value, "value": value}


def _annual(request: HttpRequest, period: Period, kind: str, *, refresh: bool = False):
    """The ranked rows and the kept figures' row (None when computed for an explicit ``as_of``).

    Without ``?as_of=`` the page reads the figures kept by :mod:`assessment.figures_store`
    (computed in the background, issue 11 §5); with it, it computes them as they were then.
    """
    if request.GET.get("as_of"):
        return assessment_annual(period=period, unit_ids=_scope(request), kind=kind or None,
                                 as_of=_as_of(request)), None
    figures, kept = figures_kept(period=period, unit_ids=_scope(request), refresh=refresh)
    return assessment_annual(period=period, unit_ids=_scope(request), kind=kind or None,
                             as_of=kept.computed_at, figures=figures), kept


@_readers_only
def report_view(request: HttpRequest) -> HttpResponse:
    """Annual assessment: ranked units with every figure linked to its cases.

    A POST with ``refresh`` (the 立即更新 button) computes the kept figures of the period now and
    comes back to the report.
    """
    period, kind, keep = _params(request)
    if request.method == "POST":
        if "refresh" in request.POST:
            _annual(request, period, kind, refresh=True)
        return HttpResponseRedirect(request.get_full_path())
    rows, kept = _annual(request, period, kind)
    # The drill-down and the export read the log as of the kept figures' time: the same numbers.
    links = {**keep, "as_of": timezone.localtime(kept.computed_at).isoformat()} if kept else keep
    as_of = _as_of(request)
    table = []
    for row in rows:
        cells = []
        for name in COLUMNS:
            cell = _cell(name, row.values.get(name))
            base = {**links, "metric": name, "unit": row.unit.pk}
            cell["den_url"] = reverse("assessment:report_cases") + "?" + urlencode({**base, "part": "den"})
            cell["num_url"] = reverse("assessment:report_cases") + "?" + urlencode({**base, "part": "num"})
            cells.append(cell)
        table.append({"row": row, "cells": cells})
    context = {
        **admin.site.each_context(request),
        "title": _("年度绩效考核"),
        "period": period,
        "table": table,
        "columns": [(n, METRIC_LABELS[n]) for n in COLUMNS],
        "kinds": KINDS,
        "kind": kind,
        "keep": keep,
        "year": keep.get("year", ""),
        "export_url": reverse("assessment:report_export") + "?" + urlencode(links),
        "can_edit_weights": request.user.is_superuser,
        "definitions": _definitions(),
        "min_volume": MIN_VOLUME,
        **_office_context(request, period=period, keep=links, as_of=as_of, kept=kept),
        "kept": kept,
    }
    return render(request, "assessment/report.html", context)


# ---------------------------------------------------------------- the office's own speed (issue 13 §5)


def _reads_office(request: HttpRequest) -> bool:
    """The office and leaders' figures cover every case: readers of every unit only (scope None)."""
    return _scope(request) is None


def _office_context(request: HttpRequest, *, period: Period, keep: dict, as_of: datetime,
                    kept: KeptFigures | None = None) -> dict:
    """The report's table of the 网评办's and the leaders' own rates, with drill-down links.

    Read from the kept figures when the unit table is (the same time, issue 11 §5; ``keep`` then
    carries that time as ``as_of`` for the drill-downs); computed at ``as_of`` otherwise.
    """
    if not _reads_office(request):
        return {"office_table": None}
    table = []
    figures = office_figures_load(kept.office) if kept is not None and kept.office else None
    if figures is None:
        figures = office_figures(period=period, as_of=kept.computed_at if kept is not None else as_of)
    for fig in figures:
        cells = []
        for name in OFFICE_METRICS:
            value = fig.values.get(name)
            if value is None:
                cells.append(None)
                continue
            base = {**keep, "metric": name, "who": fig.key}
            url = reverse("assessment:report_cases") + "?"
            cells.append({**_cell("sign_for_on_time", value), "metric": name,
                          "den_url": url + urlencode({**base, "part": "den"}),
                          "num_url": url + urlencode({**base, "part": "num"})})
        table.append({"key": fig.key, "label": fig.label, "cells": cells})
    return {
        "office_table": table,
        "office_columns": [(n, OFFICE_METRIC_LABELS[n]) for n in OFFICE_METRICS],
        "office_definitions": [(OFFICE_METRIC_LABELS[n], OFFICE_METRIC_DEFINITIONS[n]) for n in OFFICE_METRICS],
    }


def _office_dashboard(request: HttpRequest, data: dict, *, as_of: datetime) -> dict:
    """The dashboard's office table per month (the report's figures for each month) and definitions.

    ``office_by_month``: :func:`assessment.office_metrics.office_figures_by_month` over the months
    of ``data["rates_by_month"]`` at the same ``as_of``, each row with its drill-down links; empty
    for readers who do not read every unit. The office figures' definitions join ``definitions``.
    """
    if not _reads_office(request):
        return {"office_by_month": []}
    months = [(m["month"], Period.days(date.fromisoformat(m["start"]), date.fromisoformat(m["end"])))
              for m in data["rates_by_month"]]
    by_month = office_figures_by_month(months=months, as_of=as_of)
    url = reverse("assessment:report_cases") + "?"
    for month in by_month:
        for row in month["rows"]:
            for name in OFFICE_METRICS:
                if name in row:
                    base = {"start": month["start"], "end": month["end"], "metric": name, "who": row["key"],
                            "as_of": as_of.isoformat()}
                    row[name]["href"] = url + urlencode({**base, "part": "den"})
    return {
        "office_by_month": by_month,
        "office_labels": {n: str(OFFICE_METRIC_LABELS[n]) for n in OFFICE_METRICS},
        "definitions": {**data["definitions"],
                        **{n: {"label": OFFICE_METRIC_LABELS[n], "text": OFFICE_METRIC_DEFINITIONS[n]}
                           for n in OFFICE_METRICS}},
    }


def _office_drill_ids(request: HttpRequest) -> tuple[list[int], dict]:
    """The cases behind one office figure (``metric`` in OFFICE_METRICS, ``who``, ``part``).

    Raises:
        PermissionDenied: the reader does not read every unit.
        BadRequest: an unknown part or row.
    """
    period, _kind, keep = _params(request)
    if not _reads_office(request):
        raise PermissionDenied
    metric, part, who = request.GET["metric"], request.GET.get("part", "den"), request.GET.get("who", "office")
    # A leader's row is leader:<user id>; a longer number is no user (and no integer overflow).
    valid_who = who in ROW_METRICS or (who.startswith("leader:") and who[7:].isdigit() and len(who[7:]) <= 9)
    if part not in {"num", "den"} or not valid_who:
        raise BadRequest(_("未知的考核指标。"))
    ids = office_metric_case_ids(period=period, metric=metric, part=part, who=who, as_of=_as_of(request))
    return ids, {"period": period, "metric": metric, "part": part, "unit": None, "who": who,
                 "who_label": office_row_label(key=who), "keep": keep}


def _drill_ids(request: HttpRequest) -> tuple[list[int], dict]:
    if request.GET.get("metric", "") in OFFICE_METRICS:
        return _office_drill_ids(request)
    period, kind, keep = _params(request)
    metric = request.GET.get("metric", "")
    part = request.GET.get("part", "den")
    if metric not in METRIC_LABELS or part not in {"num", "den"}:
        raise BadRequest(_("未知的考核指标。"))
    unit_ids = None
    unit = None
    if request.GET.get("unit"):
        try:
            unit_pk = int(request.GET["unit"])
        except ValueError as exc:
            raise BadRequest(_("单位参数不正确。")) from exc
        unit = Unit.objects.filter(pk=unit_pk).first() if 0 < unit_pk < 2**31 else None
        if unit is None:
            raise Http404
        groups = unit_groups(kind=kind or None)
        unit_ids = sorted(groups[unit.pk][1]) if unit.pk in groups else [unit.pk]
    with AssessmentFacts(period=period, unit_ids=_scope(request), as_of=_as_of(request)) as facts:
        ids = metric_case_ids(facts=facts, metric=metric, part=part, unit_ids=unit_ids)
    return ids, {"period": period, "metric": metric, "part": part, "unit": unit, "keep": keep}


def _metric_label(name: str) -> str:
    return {**METRIC_LABELS, **OFFICE_METRIC_LABELS}[name]


@_readers_only
def report_cases_view(request: HttpRequest) -> HttpResponse:
    """The cases behind one number of the report (paginated; only cases the user may see)."""
    ids, info = _drill_ids(request)
    # Only the cases the reader may open are listed; the others (e.g. cases his unit returned,
    # now led by another unit) are counted, not revealed.
    ids_visible = list(cases_visible_to(user=request.user).filter(pk__in=ids).order_by("-pk").values_list("pk", flat=True))
    page = Paginator(ids_visible, 50).get_page(request.GET.get("page"))
    cases = {
        c.pk: c
        for c in cases_visible_to(user=request.user).filter(pk__in=list(page.object_list))
        .select_related("lead_unit")
    }
    query = request.GET.copy()
    query.pop("page", None)
    context = {
        **admin.site.each_context(request),
        "title": _("考核明细:%(metric)s") % {"metric": _metric_label(info["metric"])},
        "info": info,
        "part_label": _("计入分子的案件") if info["part"] == "num" else _("计入统计的全部案件"),
        "page": page,
        "cases": [cases[i] for i in page.object_list if i in cases],
        "total": len(ids),
        "hidden": len(ids) - len(ids_visible),
        "definition": {**METRIC_DEFINITIONS, **OFFICE_METRIC_DEFINITIONS}[info["metric"]],
        "query": query.urlencode(),
        "report_url": reverse("assessment:report") + "?" + urlencode(info["keep"]),
        "may_see_numbers": user_may_see_personal_numbers(user=request.user),
    }
    return render(request, "assessment/report_cases.html", context)


@_readers_only
def report_export_view(request: HttpRequest) -> HttpResponse:
    """The ranked assessment as xlsx; with ``metric`` and ``part`` also the drill-down's cases."""
    period, kind, keep = _params(request)
    rows, _kept = _annual(request, period, kind)
    as_of = _as_of(request)
    cases = None
    hidden = 0
    if request.GET.get("metric"):
        ids, _info = _drill_ids(request)
        cases = list(cases_visible_to(user=request.user).filter(pk__in=ids).select_related("lead_unit")
                     .order_by("-submitted_at"))
        hidden = len(ids) - len(cases)
    data = assessment_workbook(rows=rows, period=period, title=_("网民留言办理年度绩效考核"), cases=cases,
                               hidden_cases=hidden, may_see_numbers=user_may_see_personal_numbers(user=request.user),
                               office=office_figures(period=period, as_of=as_of) if _reads_office(request) else None)
    return spreadsheets.download(
        data, content_type=spreadsheets.XLSX,
        filename=spreadsheets.export_filename(_("绩效考核") + f"_{period.start:%Y-%m-%d}", "xlsx"),
        ascii_filename=spreadsheets.export_filename(f"assessment_{period.start:%Y-%m-%d}", "xlsx"))


@_readers_only
def dashboard_view(request: HttpRequest) -> HttpResponse:
    """The leaders' and office's dashboard on its own page (the same panel as on the admin index)."""
    context = {**admin.site.each_context(request), "title": _("工作态势")}
    return render(request, "assessment/dashboard.html", context)


@_readers_only
def dashboard_data_view(request: HttpRequest) -> JsonResponse:
    """The dashboard's numbers as JSON, within the user's scope."""
    try:
        end = date.fromisoformat(request.GET["end"]) if request.GET.get("end") else None
        weeks = int(request.GET.get("weeks") or 12)
        if (end is not None and end.year not in YEARS) or not 1 <= weeks <= 104:
            raise ValueError(request.GET.get("end"))
    except ValueError as exc:
        raise BadRequest(_("日期或周数不正确(年度须在 %(a)d–%(b)d 之间,周数 1–104)。")
                         % {"a": YEARS.start, "b": YEARS.stop - 1}) from exc
    as_of = _as_of(request)
    data = dashboard_data(user=request.user, weeks=weeks, end=end, now=as_of)
    data.update(_office_dashboard(request, data, as_of=as_of))
    data["links"] = {
        "report": reverse("assessment:report"),
        "cases": reverse("admin:casework_case_changelist"),
        "topic": reverse("admin:assessment_topic_changelist"),
    }
    return JsonResponse(data)


@_readers_only
def articles_for_case_view(request: HttpRequest, case_id: int) -> JsonResponse:
    """The standard answers suggested for a case, as JSON, for inserting into a draft.

    ``?q=`` (up to 50 characters) searches the active articles instead of suggesting by the case's
    topic and subject. 404 when the case does not exist or lies outside the user's scope.
    """
    case = Case.objects.filter(pk=case_id).select_related("lead_unit").first()
    if case is None or not user_can_see_case(user=request.user, case=case):
        raise Http404
    q = (request.GET.get("q") or "").strip()[:50]
    if "\x00" in q:  # no text field can hold a NUL: a malformed search, not a server error
        raise BadRequest("q")
    found = knowledge_articles_search(q=q) if q else knowledge_articles_for_case(case=case)
    return JsonResponse({
        "case": case.pk,
        "q": q,
        "articles": [
            {"id": a.pk, "title": a.title, "body": a.body, "policy_basis": a.policy_basis}
            for a in found
        ],
    })
