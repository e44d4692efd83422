"""The case list at scale (issue 11 §3): constant queries, no sequential scan, capped counts.

Cases are written with one ``INSERT … SELECT generate_series`` (the ORM would take minutes for
tens of thousands), spread over every state of the loop, both units and three years, with their
clocks, co-unit tasks, pending extensions and open referrals, so that every queue and filter has
rows. Then every role's default list, each of its queues and the common filters (state, unit,
overdue, search by reference, the date drill-down) and the admin index are requested through the
real admin:

* the number of queries is the same with 30 and with 200 cases (and at most 12 for a list page);
* on PostgreSQL, with 30,000 cases analysed, ``EXPLAIN (FORMAT JSON)`` of every statement the page
  ran shows no sequential scan of ``casework_case`` or ``casework_caseclock`` (no ``SET
  enable_seqscan``: the planner chooses freely on real statistics);
* past ``CASEWORK_LIST_COUNT_CAP`` the list says "N+" and still pages on.
"""

from datetime import date, datetime, timedelta
import json
import re
from zoneinfo import ZoneInfo

from django.contrib.auth.models import Group, Permission
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from guardian.shortcuts import assign_perm, get_objects_for_user
import pytest

from accounts.backends import OneQueryModelBackend
from accounts.counting import count_capped
from accounts.models import Unit, User
from accounts.selectors import ACCESS_UNIT, unit_scope_paths, unit_scope_single_id, units_in_scope
from accounts.services import unit_create
from casework import selectors
from casework.models import ACTIVE_STATES, Case, CaseClock, CoUnitTask, DisciplineReferral, Extension, State

SHANGHAI = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 11, 25, 15, 0, tzinfo=SHANGHAI)
CHANGELIST = "admin:casework_case_changelist"
ROLES = ["superuser", "dispatcher", "reviewer", "leader", "supervisor", "handler_a", "handler_b"]
STATES = ["registered", "dispatched", "handling", "office_review", "leader_review", "approved", "replied",
          "archived"]


def _sql_default(field, overrides: dict) -> str:
    if field.column in overrides:
        return overrides[field.column]
    if getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False):
        return "CURRENT_TIMESTAMP"
    if field.null:
        return "NULL"
    if field.get_internal_type() == "JSONField":
        return "'" + json.dumps(field.get_default() if field.has_default() else {}) + "'"
    if field.has_default():
        value = field.get_db_prep_save(field.get_default(), connection)
        if isinstance(value, bool):
            return "TRUE" if value else "FALSE"
        if isinstance(value, (int, float)):
            return str(value)
        if isinstance(value, (dict, list)):
            return "'" + json.dumps(value) + "'"
        return "'" + str(value).replace("'", "''") + "'"
    if field.get_internal_type() in ("CharField", "TextField", "SlugField"):
        return "''"
    raise AssertionError(f"no value for {field.model.__name__}.{field.name}")


def _insert(cursor, model, values: dict, source: str) -> None:
    columns = [f for f in model._meta.concrete_fields if not f.primary_key]
    cursor.execute(f'INSERT INTO {model._meta.db_table} ({", ".join(c.column for c in columns)}) '
                   f"SELECT {', '.join(_sql_default(c, values) for c in columns)} {source}")


def seed_cases(bureau, *, first: int, last: int) -> None:
    """Write cases ``first``..``last`` (references ``JB-2026-<n>``) with their clocks and side rows."""
    pg = connection.vendor == "postgresql"
    series = (f"generate_series({first}, {last}) AS s(g)" if pg else
              f"(WITH RECURSIVE s(g) AS (SELECT {first} UNION ALL SELECT g + 1 FROM s WHERE g < {last}) "
              f"SELECT g FROM s) AS s")

    def ts(seconds_expr: str) -> str:
        if pg:
            return f"(TIMESTAMPTZ '{NOW.isoformat()}' + ({seconds_expr}) * INTERVAL '1 second')"
        return f"strftime('%Y-%m-%d %H:%M:%f', '{NOW.astimezone(ZoneInfo('UTC')):%Y-%m-%d %H:%M:%S}', ({seconds_expr}) || ' seconds')"

    state = "CASE g % 8 " + " ".join(f"WHEN {i} THEN '{s}'" for i, s in enumerate(STATES)) + " END"
    units = f"CASE WHEN g % 2 = 0 THEN {bureau.unit_a.pk} ELSE {bureau.unit_b.pk} END"
    submitted = ts(f"-(({last} - g) * 2600 + 3600)")  # three years over 40,000 cases, newest last
    not_registered = "g % 8 <> 0"
    values = {
        "reference": "'JB-2026-' || substr('00000000' || g, -8, 8)" if not pg else "'JB-2026-' || lpad(g::text, 8, '0')",
        "platform_id": str(bureau.platform.pk), "external_id": "'S' || g",
        "subject": "'规模测试留言 噪音扰民'", "body": "'规模测试正文'", "submitted_at": submitted,
        "message_type": "'consult'", "state": state,
        "lead_unit_id": f"CASE WHEN {not_registered} THEN {units} END",
        "handling_round": "CASE WHEN g % 16 = 8 THEN 2 ELSE 1 END",
        "dispatched_at": f"CASE WHEN {not_registered} THEN {ts('-86400 * 2')} END",
        "accepted_at": f"CASE WHEN g % 8 > 1 THEN {ts('-86400')} END",
        "feedback_at": f"CASE WHEN g % 8 > 2 OR g % 24 = 2 THEN {ts('-3600')} END",
        "sign_for_due_at": f"CASE WHEN {not_registered} THEN {ts('CASE WHEN g % 5 = 0 THEN -7200 ELSE 86400 END')} END",
        "reply_due_at": f"CASE WHEN {not_registered} THEN {ts('CASE WHEN g % 7 = 0 THEN -7200 ELSE 86400 * 9 END')} END",
        "published_at": f"CASE WHEN g % 8 > 5 THEN {ts('-600')} END",
        "archived_at": f"CASE WHEN g % 8 = 7 THEN {ts('-60')} END",
    }
    mine = (f"FROM {Case._meta.db_table} c JOIN {series} ON c.reference = "
            + ("'JB-2026-' || substr('00000000' || g, -8, 8)" if not pg else "'JB-2026-' || lpad(g::text, 8, '0')"))
    with connection.cursor() as cursor:
        _insert(cursor, Case, values, f"FROM {series}")
        for clock, due, stopped in [("sign_for", "c.sign_for_due_at", "c.accepted_at"),
                                    ("reply", "c.reply_due_at", "c.published_at")]:
            _insert(cursor, CaseClock, {
                "case_id": "c.id", "clock": f"'{clock}'", "round": "c.handling_round", "unit_id": "c.lead_unit_id",
                "started_at": "c.dispatched_at", "amount": "3", "time_unit": "'days'", "extended_days": "0",
                "due_at": due, "stopped_at": stopped, "calendar_unconfirmed": "''",
            }, mine + " WHERE c.lead_unit_id IS NOT NULL")
        other = f"CASE WHEN c.lead_unit_id = {bureau.unit_a.pk} THEN {bureau.unit_b.pk} ELSE {bureau.unit_a.pk} END"
        _insert(cursor, CoUnitTask, {"case_id": "c.id", "unit_id": other, "task": "'协查'", "due_at": "c.reply_due_at"},
                mine + " WHERE c.state = 'handling' AND g % 48 = 2")
        _insert(cursor, Extension, {
            "case_id": "c.id", "clock": "'reply'", "round": "1", "unit_id": "c.lead_unit_id",
            "requested_by_id": str(bureau.handler_a.pk), "requested_at": "c.accepted_at", "reason": "'需协调'",
            "requested_days": "3", "decision": "'pending'", "old_due_at": "c.reply_due_at",
        }, mine + " WHERE c.state = 'handling' AND g % 80 = 10")
        _insert(cursor, DisciplineReferral, {"case_id": "c.id", "unit_id": "c.lead_unit_id", "reason": "'超期'",
                                             "created_at": "c.accepted_at"},
                mine + " WHERE c.state = 'handling' AND g % 160 = 18")


@pytest.fixture
def staff(bureau):
    bureau.superuser = User.objects.create_superuser("root", "root@bureau.invalid", "x")
    return bureau


def _pages(user) -> list[tuple[str, str, bool]]:
    """(label, url, is a list page) of ``user``: default list, its queues, filters, drill-down, index."""
    base = reverse(CHANGELIST)
    pages = [("default", base, True)]
    pages += [(f"queue {q.key}", f"{base}?queue={q.key}", True) for q in selectors.queues_for_user(user=user)]
    pages += [
        ("state", f"{base}?state=handling", True),
        ("unit", f"{base}?unit={Case.objects.exclude(lead_unit=None).values_list('lead_unit', flat=True).first()}", True),
        ("overdue", f"{base}?overdue=yes", True),
        ("reference", f"{base}?q=JB-2026-00000007", True),
        ("year", f"{base}?submitted_at__year=2025", True),
        ("month", f"{base}?submitted_at__year=2025&submitted_at__month=6", True),
        ("index", reverse("admin:index"), False),
    ]
    return pages


def _get(client, url):
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(url)
    assert response.status_code == 200, (url, response.status_code)
    return response, ctx.captured_queries


@pytest.mark.django_db
def test_list_queries_do_not_grow_with_the_cases(staff, client, settings):
    """30 cases, then 200, then 400: every role's pages run the same statements (≤ 12 on a list page).

    The first 30 already put a row in every list that the others fill (an empty list skips the
    drill-down's probe, one statement less, whatever the size of the table). A list of at most
    the cap rows reads its drill-down dates with its count (CappedPaginator.dates); past the cap
    the drill-down reads its first/last date and its buckets itself: two statements more, then
    constant.
    """
    settings.CASEWORK_LIST_COUNT_CAP = 20  # lists cross the cap between the runs

    def statements(response, queries) -> int:
        cl = (response.context or {}).get("cl")
        capped = bool(cl is not None and cl.date_hierarchy and getattr(cl.result_count, "capped", False))
        return len(queries) - (2 if capped else 0)

    seed_cases(staff, first=1, last=30)
    first = {}
    for role in ROLES:
        client.force_login(getattr(staff, role))
        for label, url, _is_list in _pages(getattr(staff, role)):
            _get(client, url)  # once per process, a field filter's parameters are read (then kept)
            first[role, label] = statements(*_get(client, url))
    for last in (200, 400):
        seed_cases(staff, first=last // 2 + 1 if last == 400 else 31, last=last)
        for role in ROLES:
            client.force_login(getattr(staff, role))
            for label, url, is_list in _pages(getattr(staff, role)):
                response, queries = _get(client, url)
                assert statements(response, queries) == first[role, label], (
                    role, label, last, [q["sql"][:120] for q in queries])
                if is_list:
                    # Every list within 12, the leader's tier-3 queue included (it reads the units in the
                    # leader's charge, accounts.selectors.units_led_by_q: one statement more than the others).
                    budget = 12 if label == "queue leader_review" else 11
                    assert len(queries) <= budget, (role, label, len(queries))
    client.force_login(staff.superuser)
    response, _q = _get(client, reverse(CHANGELIST))
    assert "20+" in response.content.decode()


def _seq_scans(plan: dict) -> list[str]:
    found = []
    if plan.get("Node Type") == "Seq Scan" and plan.get("Relation Name") in ("casework_case", "casework_caseclock"):
        found.append(plan["Relation Name"])
    for child in plan.get("Plans", []):
        found += _seq_scans(child)
    return found


@pytest.mark.django_db
def test_no_sequential_scan_of_cases_on_any_list_page(staff, client):
    """30,000 cases, analysed: no statement of any role's list page reads the case table in full."""
    if connection.vendor != "postgresql":
        pytest.skip("EXPLAIN of PostgreSQL plans")
    seed_cases(staff, first=1, last=30_000)
    with connection.cursor() as cursor:
        for model in (Case, CaseClock, CoUnitTask, Extension, DisciplineReferral):
            cursor.execute(f"ANALYZE {model._meta.db_table}")
    failures = []
    checked = 0
    for role in ROLES:
        user = getattr(staff, role)
        client.force_login(user)
        for label, url, _is_list in _pages(user):
            _response, queries = _get(client, url)
            for q in queries:
                if "casework_case" not in q["sql"]:
                    continue
                with connection.cursor() as cursor:
                    cursor.execute("EXPLAIN (FORMAT JSON) " + q["sql"])
                    plan = cursor.fetchone()[0]
                plan = plan if isinstance(plan, list) else json.loads(plan)
                checked += 1
                if _seq_scans(plan[0]["Plan"]):
                    failures.append((role, label, q["sql"][:300]))
    assert checked > 50
    assert not failures, failures


@pytest.mark.django_db
@pytest.mark.parametrize("role", ROLES)
def test_the_overdue_filter_in_scope_lists_the_same_cases_as_the_plain_rule(staff, client, role, settings):
    """超期 for a unit's staff repeats the scope in each arm (for the indexes): the same rows, co-units too."""
    settings.CASEWORK_LIST_COUNT_CAP = 10_000
    seed_cases(staff, first=1, last=400)
    user = getattr(staff, role)
    now = timezone.now()
    mine = {u.pk for u in units_of(user)}
    if role.startswith("handler"):  # an overdue case of the other unit that this one co-handles
        other = Case.objects.filter(selectors.cases_overdue_q(now=now)).exclude(lead_unit__in=mine).exclude(
            co_unit_tasks__unit__in=mine).order_by("pk").first()
        CoUnitTask.objects.create(case=other, unit_id=min(mine), task="协查", due_at=other.reply_due_at or now)
    visible = selectors.cases_visible_to(user=user)
    expected = set(visible.filter(selectors.cases_overdue_q(now=now)).values_list("pk", flat=True))
    assert expected
    assert set(visible.filter(selectors.cases_overdue_in_scope_q(user=user, now=now)).values_list("pk", flat=True)) \
        == expected
    if role.startswith("handler"):  # some overdue cases reach the handler as a co-unit only
        assert any(c.lead_unit_id not in mine for c in Case.objects.filter(pk__in=expected))
    client.force_login(user)
    listed = set()
    for page in range(0, 20):
        html = client.get(reverse(CHANGELIST) + f"?overdue=yes&p={page + 1}").content.decode()
        found = {int(pk) for pk in re.findall(r'name="_selected_action" value="(\d+)"', html)}
        if not found:
            break
        listed |= found
    assert listed == expected


def units_of(user) -> list:
    return list(units_in_scope(user=user))


@pytest.mark.django_db
def test_capped_count_says_so_and_pages_on(staff, client, settings):
    """Past the cap the list reads "N+" and its 下一页 link leads to further rows."""
    settings.CASEWORK_LIST_COUNT_CAP = 30
    seed_cases(staff, first=1, last=120)
    count = count_capped(queryset=Case.objects.all(), cap=30)
    assert int(count) == 31 and count.capped and str(count) == "30+"
    assert not count_capped(queryset=Case.objects.all(), cap=500).capped
    client.force_login(staff.superuser)
    page = client.get(reverse(CHANGELIST)).content.decode()
    assert "30+" in page and "cw-page-next" in page
    second = client.get(reverse(CHANGELIST) + "?p=3").content.decode()
    assert "JB-2026-" in second and "cw-page-prev" in second


@pytest.mark.django_db
def test_queue_tiles_are_capped_and_equal_the_queue(staff, settings):
    """A queue tile counts what its list shows, up to the cap (one statement for all the tiles)."""
    settings.CASEWORK_LIST_COUNT_CAP = 5
    seed_cases(staff, first=1, last=200)
    with CaptureQueriesContext(connection) as ctx:
        counts = dict((spec.key, n) for spec, n in selectors.queue_counts(user=staff.dispatcher))
    assert len([q for q in ctx.captured_queries if "casework_case" in q["sql"]]) == 1
    for key, n in counts.items():
        full = selectors.case_queue(user=staff.dispatcher, key=key).count()
        assert (int(n), n.capped) == ((6, True) if full > 5 else (full, False)), key


DASHBOARD_ROLES = ["superuser", "reviewer", "leader", "handler_a"]


def _dashboard_cases(user) -> dict:
    """The dashboard's case figures for ``user``, as plain counts of the visible cases (the definition)."""
    visible = selectors.cases_visible_to(user=user)
    now = timezone.now()
    return {
        "open": {s: visible.filter(state=s).count() for s in ACTIVE_STATES},
        "sign_for": visible.filter(state="dispatched", sign_for_due_at__lt=now).count(),
        "reply": visible.filter(state__in=ACTIVE_STATES, reply_due_at__lt=now).count(),
    }


@pytest.mark.django_db
def test_dashboard_queries_do_not_grow_and_figures_match_their_definition(staff, client):
    """The dashboard's data: the same statements at 30 and 200 cases; each case figure equals its plain count.

    Its open cases by state and overdue counts come from one grouped statement, its weekly and
    per-unit volumes from another (issue 11 §7); the figures are those of the straightforward counts.
    """
    url = reverse("assessment:dashboard_data")
    seed_cases(staff, first=1, last=30)
    first = {}
    for role in DASHBOARD_ROLES:
        client.force_login(getattr(staff, role))
        _get(client, url)
        first[role] = len(_get(client, url)[1])
    seed_cases(staff, first=31, last=200)
    for role in DASHBOARD_ROLES:
        user = getattr(staff, role)
        client.force_login(user)
        response, queries = _get(client, url)
        assert len(queries) == first[role], (role, [q["sql"][:120] for q in queries])
        data = response.json()
        expected = _dashboard_cases(user)
        assert {r["state"]: r["count"] for r in data["open_by_state"]} == expected["open"], role
        assert data["overdue"] == {"sign_for": expected["sign_for"], "reply": expected["reply"]}, role
        assert sum(r["count"] for r in data["volume_by_week"]) == sum(r["count"] for r in data["volume_by_unit"])
        start = datetime.combine(date.fromisoformat(data["window"]["start"]), datetime.min.time(), SHANGHAI)
        end = datetime.combine(date.fromisoformat(data["window"]["end"]), datetime.min.time(), SHANGHAI)
        in_window = selectors.cases_visible_to(user=user).filter(
            submitted_at__gte=start, submitted_at__lt=end + timedelta(days=1))
        assert in_window.exists(), role
        assert {r["unit_id"]: r["count"] for r in data["volume_by_unit"]} == {
            u: in_window.filter(lead_unit_id=u).count() for u in in_window.values_list("lead_unit_id", flat=True)
        }, role


@pytest.mark.django_db
def test_row_checkbox_is_djangos(staff, rf):
    """The changelist's row checkbox, written without the form renderer, is Django's markup exactly."""
    from django.contrib import admin as django_admin
    from django.utils import translation

    seed_cases(staff, first=1, last=2)
    case = Case.objects.order_by("pk").first()
    case.subject = '<b>"噪音" & 13800138000</b>'
    model_admin = django_admin.site._registry[Case]
    for language in ("zh-hans", "en"):
        with translation.override(language):
            assert model_admin.action_checkbox(case) == django_admin.ModelAdmin.action_checkbox(model_admin, case)


@pytest.mark.django_db
def test_drill_down_bounds_are_the_first_and_last_date(staff):
    """The drill-down's first and last date (two ordered probes) are MIN and MAX of the list's dates."""
    from django.db.models import Max, Min

    from accounts.admin_lists import _bounds

    seed_cases(staff, first=1, last=300)
    for user in (staff.superuser, staff.handler_a, staff.dispatcher):
        for qs in (selectors.cases_visible_to(user=user),
                   selectors.case_queue(user=user, key="follow_up"),
                   selectors.case_queue(user=user, key="handling")):
            expected = qs.order_by().aggregate(first=Min("submitted_at"), last=Max("submitted_at"))
            assert _bounds(qs, "submitted_at") == expected


@pytest.mark.django_db
def test_row_links_keep_the_filters_as_django_writes_them(staff, client):
    """A filtered list's row links carry the list's filters exactly as Django's add_preserved_filters writes them."""
    from django.contrib.admin.templatetags.admin_urls import add_preserved_filters

    seed_cases(staff, first=1, last=40)
    client.force_login(staff.superuser)
    unit = Case.objects.filter(state="handling").values_list("lead_unit", flat=True)[0]
    query = f"state=handling&unit={unit}"
    html = client.get(reverse(CHANGELIST) + "?" + query).content.decode()
    rows = [case for case in Case.objects.filter(state="handling") if f'value="{case.pk}"' in html]
    assert rows
    for case in rows[:3]:
        url = reverse("admin:casework_case_change", args=[case.pk])
        expected = add_preserved_filters({"preserved_filters": "_changelist_filters=" + query.replace("=", "%3D")
                                          .replace("&", "%26"), "opts": Case._meta}, url)
        assert f'href="{expected}"' in html.replace("&amp;", "&"), (expected, case.pk)
    plain = client.get(reverse(CHANGELIST)).content.decode()
    assert "_changelist_filters" not in plain


@pytest.mark.django_db
def test_state_column_is_the_state_display(staff):
    """The list's state column (labels read once) reads as ``get_state_display`` in every language."""
    from django.contrib import admin as django_admin
    from django.utils import translation


    model_admin = django_admin.site._registry[Case]
    for language in ("zh-hans", "en"):
        with translation.override(language):
            for value, _label in State.choices:
                case = Case(state=value)
                assert model_admin.state_badge(case) == case.get_state_display(), (language, value)


@pytest.mark.django_db
def test_permissions_in_one_statement_are_djangos(staff):
    """The site's model backend reads the same permission set as Django's, own and groups', in one statement."""
    from django.contrib.auth.backends import ModelBackend
    from django.contrib.auth.models import Permission


    staff.handler_a.user_permissions.add(Permission.objects.get(codename="view_platform"))
    for role in ROLES:
        pk = getattr(staff, role).pk
        user = User.objects.get(pk=pk)
        with CaptureQueriesContext(connection) as ctx:
            mine = OneQueryModelBackend().get_all_permissions(user)
            assert OneQueryModelBackend().get_all_permissions(user) is mine  # kept for the request
        assert len(ctx.captured_queries) == 1, role
        assert mine == ModelBackend().get_all_permissions(User.objects.get(pk=pk)), role
    assert "casework.view_platform" in OneQueryModelBackend().get_all_permissions(
        User.objects.get(pk=staff.handler_a.pk))


@pytest.mark.django_db
def test_unit_scope_paths_are_guardians_object_permissions(staff):
    """The unit scope read in one plain statement is guardian's ``get_objects_for_user`` (own and group grants).

    Grants on an inactive unit, model-wide grants and other object permissions on units widen nothing.
    """
    closed = unit_create(name="撤销单位", code="closed", kind=Unit.Kind.DISTRICT, parent=staff.city, is_active=False)
    group = Group.objects.create(name="协查组")
    assign_perm(ACCESS_UNIT, group, staff.unit_b)
    staff.handler_a.groups.add(group)
    assign_perm(ACCESS_UNIT, staff.head_a, closed)
    staff.handler_b.user_permissions.add(Permission.objects.get(codename="access_unit"))  # model-wide: ignored
    assign_perm("accounts.change_unit", staff.handler_b, staff.unit_a)  # another permission: ignored
    users = [*(getattr(staff, r) for r in ROLES if r != "superuser"), staff.head_a]
    for user in users:
        fresh = User.objects.get(pk=user.pk)
        expected = sorted(set(get_objects_for_user(
            fresh, ACCESS_UNIT, klass=Unit.objects.filter(is_active=True), accept_global_perms=False,
            with_superuser=False).values_list("path", flat=True)))
        with CaptureQueriesContext(connection) as ctx:
            assert unit_scope_paths(user=fresh) == expected, user.username
            assert unit_scope_paths(user=fresh) == expected  # kept on the user for the request
        assert len(ctx.captured_queries) == 1, user.username
    assert sorted(unit_scope_paths(user=User.objects.get(pk=staff.handler_a.pk))) == sorted(
        [staff.unit_a.path, staff.unit_b.path])
    assert unit_scope_paths(user=staff.superuser) == []


@pytest.mark.django_db
def test_a_one_unit_scope_is_named_by_its_id_and_lists_the_same_cases(staff):
    """``unit_scope_single_id``: the id when the scope is one unit without sub-units, else None; the
    access rule written with it (``lead_unit_id = <id>``) selects what the subquery form selects."""
    seed_cases(staff, first=1, last=120)
    fresh = lambda user: User.objects.get(pk=user.pk)  # noqa: E731 (the scope is kept per request)
    assert unit_scope_single_id(user=fresh(staff.handler_a)) == staff.unit_a.pk
    user = fresh(staff.handler_b)
    with CaptureQueriesContext(connection) as ctx:
        assert unit_scope_single_id(user=user) == staff.unit_b.pk
        assert unit_scope_paths(user=user) == [staff.unit_b.path]
    assert len(ctx.captured_queries) == 1  # one statement for the paths and the id
    assert unit_scope_single_id(user=fresh(staff.dispatcher)) is None  # city-wide
    assert unit_scope_single_id(user=staff.superuser) is None
    visible = {r: set(selectors.cases_visible_to(user=fresh(getattr(staff, r))).values_list("pk", flat=True))
               for r in ("handler_a", "handler_b")}
    # A sub-unit under unit A: A's handler now sees two units, named by the subquery again.
    station = unit_create(name="城东派出所", code="a-east", kind=Unit.Kind.STATION, parent=staff.unit_a)
    assert unit_scope_single_id(user=fresh(staff.handler_a)) is None
    assert set(selectors.cases_visible_to(user=fresh(staff.handler_a)).values_list("pk", flat=True)) == visible[
        "handler_a"]
    moved = Case.objects.filter(lead_unit=staff.unit_a).order_by("pk").first()
    Case.objects.filter(pk=moved.pk).update(lead_unit=station)
    assert moved.pk in set(selectors.cases_visible_to(user=fresh(staff.handler_a)).values_list("pk", flat=True))
    # Two grants (another unit's by a group): no single id; the rows are both units'.
    group = Group.objects.create(name="协查组二")
    assign_perm(ACCESS_UNIT, group, staff.unit_a)
    staff.handler_b.groups.add(group)
    user = fresh(staff.handler_b)
    assert unit_scope_single_id(user=user) is None
    assert set(selectors.cases_visible_to(user=user).values_list("pk", flat=True)) >= visible["handler_b"] | {
        moved.pk}
    # The one-unit form and the subquery form select the same rows for a one-unit handler.
    user = fresh(staff.handler_b)
    user._unit_scope = ([staff.unit_b.path], None)  # as if the id were unknown: the subquery form
    group.user_set.remove(staff.handler_b)
    assert set(selectors.cases_visible_to(user=user).values_list("pk", flat=True)) == visible["handler_b"]
    for key in ("handling", "sign_for", "sent_back"):
        one, other = fresh(staff.handler_b), fresh(staff.handler_b)
        other._unit_scope = ([staff.unit_b.path], None)
        assert set(selectors.case_queue(user=one, key=key).values_list("pk", flat=True)) == set(
            selectors.case_queue(user=other, key=key).values_list("pk", flat=True)), key


def _indexes_used(plan: dict) -> set[str]:
    found = {plan["Index Name"]} if "Index Name" in plan else set()
    for child in plan.get("Plans", []):
        found |= _indexes_used(child)
    return found


@pytest.mark.django_db
def test_queues_read_their_own_indexes(staff, client):
    """30,000 cases, analysed: the 退回待裁定 queue reads its partial index, a handler's 承办中 and 待签收 their unit's.

    Migration 0020 (issue 11 §3): without them the returned queue read every registered case and
    sorted, and a handler's counts visited every row of the state in the unit.
    """
    if connection.vendor != "postgresql":
        pytest.skip("EXPLAIN of PostgreSQL plans")
    seed_cases(staff, first=1, last=30_000)
    with connection.cursor() as cursor:
        for model in (Case, CaseClock, CoUnitTask, Extension, DisciplineReferral):
            cursor.execute(f"ANALYZE {model._meta.db_table}")
    # A one-unit handler's scope is ``lead_unit_id = <id>``. With half the cases in that unit here,
    # PostgreSQL may as well walk the bureau's 承办中 (发回修改) index in the queue's order and keep
    # the unit's, or read the unit's ~1,900 dispatched cases by (lead unit, state) and sort them; at
    # 1,000,000 cases in 16 units it reads the unit's queue index (scripts/bench_list.py).
    handling = {"case_unit_handling_idx", "case_handling_queue_idx"}
    for user, queue, index in [(staff.dispatcher, "returned", {"case_returned_queue_idx"}),
                               (staff.handler_a, "handling", handling),
                               (staff.handler_a, "sent_back", {"case_unit_handling_idx", "case_sent_back_queue_idx"}),
                               (staff.handler_a, "sign_for", {"case_unit_sign_for_idx", "case_unit_state_idx"}),
                               (staff.superuser, "handling", {"case_handling_queue_idx"})]:
        client.force_login(user)
        _response, queries = _get(client, f"{reverse(CHANGELIST)}?queue={queue}")
        used = set()
        for q in queries:
            if "casework_case" in q["sql"]:
                with connection.cursor() as cursor:
                    cursor.execute("EXPLAIN (FORMAT JSON) " + q["sql"])
                    plan = cursor.fetchone()[0]
                plan = plan if isinstance(plan, list) else json.loads(plan)
                used |= _indexes_used(plan[0]["Plan"])
        assert index & used, (queue, sorted(used))


@pytest.mark.django_db
def test_a_queue_page_applies_the_access_rule_once(staff, client):
    """A queue's statements carry the access rule once (the changelist's queryset is visible already).

    Twice, PostgreSQL multiplied the two conditions' selectivities and misjudged the queue's size;
    the rule itself still holds: the queue lists exactly the queue's cases the user may see.
    """
    seed_cases(staff, first=1, last=200)
    user = staff.handler_a
    client.force_login(user)
    for key in ("handling", "sent_back", "sign_for", "to_dispatch"):
        response, queries = _get(client, f"{reverse(CHANGELIST)}?queue={key}")
        page = [q["sql"] for q in queries if q["sql"].startswith('SELECT "casework_case"."id"')]
        assert page, key
        rule = [sql.count('"casework_case"."id" IN (SELECT') + sql.count('"casework_case"."id" = ANY(ARRAY(SELECT')
                for sql in page]
        assert rule == [1] * len(page), (key, rule)
        expected = set(selectors.case_queue(user=user, key=key).values_list("pk", flat=True))
        assert expected <= set(selectors.cases_visible_to(user=user).values_list("pk", flat=True))
        shown = {c.pk for c in Case.objects.filter(pk__in=expected) if f'value="{c.pk}"' in response.content.decode()}
        assert shown == expected or len(expected) > 50, key


DRILL_DOWN = re.compile(r'<nav class="toplinks">.*?</nav>', re.S)


@pytest.mark.django_db
@pytest.mark.parametrize("params", ["", "?submitted_at__year=2026", "?overdue=yes"])
def test_the_drill_down_read_with_the_count_equals_the_probed_one(staff, client, settings, params):
    """Below the cap the drill-down comes from the dates read with the count; past it from probes: the same links."""
    seed_cases(staff, first=1, last=1500)  # about 45 days of messages: two months, many days
    client.force_login(staff.superuser)
    base = reverse("admin:casework_case_changelist")
    settings.CASEWORK_LIST_COUNT_CAP = 5000
    levels = [params]
    while len(levels) < 4:  # one level down, along the first choice, as a person clicks
        nav = DRILL_DOWN.search(_get(client, base + levels[-1])[0].content.decode())
        link = nav and re.search(r'<a href="(\?[^"]*__(?:year|month|day)=[^"]*)">', nav.group(0))
        if not link:
            break
        levels.append(link.group(1).replace("&amp;", "&"))
    pages = {}
    for cap in (5000, 5):  # the list's count below the cap (dates read with it), then capped (probes)
        settings.CASEWORK_LIST_COUNT_CAP = cap
        for level in levels:
            nav = DRILL_DOWN.search(_get(client, base + level)[0].content.decode())
            assert nav, (cap, level)
            pages[cap, level] = nav.group(0)
    for level in levels:
        assert pages[5000, level] == pages[5, level], level
    assert len(levels) >= 3  # years or months, then months, then days were compared
