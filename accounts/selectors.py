"""Reads for people and units, including the unit scope behind the one access rule."""

from functools import reduce
import operator

from django.contrib.auth.models import Permission
from django.contrib.contenttypes.models import ContentType
from django.db import connections, router
from django.db.models import Q, QuerySet
from guardian.models import GroupObjectPermission, UserObjectPermission

from accounts import roles
from accounts.models import Unit, UnitMembership, User

ACCESS_UNIT = "accounts.access_unit"


def unit_scope_paths(*, user: User) -> list[str]:
    """Return the tree paths of the units ``user`` was granted access to (object permissions only).

    Global (model-wide) permissions are ignored on purpose: a model-wide grant must never widen an
    object scope to "everything" (field case C17). Superusers get an empty list; callers treat
    superusers separately. The result is cached on the user object for the request.

    The grants are django-guardian's object permissions ``accounts.access_unit`` on active units,
    the user's own and their groups' (what ``get_objects_for_user(user, ACCESS_UNIT,
    accept_global_perms=False, with_superuser=False)`` returns), read with one plain statement:
    building guardian's queryset cost a tenth of every case list's CPU time (issue 11 §3).
    ``tests/test_list_scale.py`` holds the two equal.
    """
    if not user.is_authenticated or not user.is_active or user.is_superuser:
        return []
    return _scope_read(user)[0]


def unit_scope_single_id(*, user: User) -> int | None:
    """Return the id of the one unit of ``user``'s scope when it holds exactly one, else None.

    A handler of a unit without sub-units sees that unit's cases only; a list filtered by
    ``lead_unit_id = <id>`` rather than "one of the units under these paths" is read in its order
    from the (lead unit, …) indexes and stops at the page (issue 11 §3). None for superusers, for
    a scope of several units or of none. Read with :func:`unit_scope_paths`' statement, cached
    on the user object for the request.
    """
    if not user.is_authenticated or not user.is_active or user.is_superuser:
        return None
    return _scope_read(user)[1]


def _scope_read(user: User) -> tuple[list[str], int | None]:
    cached = getattr(user, "_unit_scope", None)
    if cached is None:
        cached = user._unit_scope = _granted_unit_paths(user_id=user.pk)
    return cached


def _granted_unit_paths(*, user_id: int) -> tuple[list[str], int | None]:
    """The sorted distinct paths of the active units on which ``user_id`` or a group of theirs
    holds ``access_unit``, and the id of the one unit under them when there is exactly one."""
    unit_ct = ContentType.objects.get_for_model(Unit)  # cached for the process
    codename = ACCESS_UNIT.split(".", 1)[1]  # on the unit's content type, so of this app
    uop, gop = UserObjectPermission._meta.db_table, GroupObjectPermission._meta.db_table
    perm, member = Permission._meta.db_table, User.groups.through._meta.db_table
    table = Unit._meta.db_table
    # Each granted path with the number of units under it (itself included, as units_in_scope
    # counts them) and the smallest id: a few paths, a table of a bureau's units.
    under = f"FROM {table} d WHERE d.path LIKE g.path || '%%'"
    sql = (
        f"SELECT g.path, (SELECT COUNT(*) {under}), (SELECT MIN(d.id) {under}) FROM ("
        f"SELECT DISTINCT u.path FROM {table} u WHERE u.is_active AND CAST(u.id AS TEXT) IN ("
        f" SELECT o.object_pk FROM {uop} o JOIN {perm} p ON p.id = o.permission_id"
        f"  WHERE o.user_id = %s AND o.content_type_id = %s AND p.content_type_id = %s AND p.codename = %s"
        f" UNION ALL"
        f" SELECT o.object_pk FROM {gop} o JOIN {perm} p ON p.id = o.permission_id"
        f"  JOIN {member} m ON m.group_id = o.group_id"
        f"  WHERE m.user_id = %s AND o.content_type_id = %s AND p.content_type_id = %s AND p.codename = %s"
        f")) g ORDER BY g.path"
    )
    args = [user_id, unit_ct.pk, unit_ct.pk, codename]
    with connections[router.db_for_read(Unit)].cursor() as cursor:
        cursor.execute(sql, args + args)
        rows = cursor.fetchall()
    paths = [path for path, _n, _id in rows]
    # Nested grants (a unit and its parent) count the inner units twice: one path only is one unit.
    single = rows[0][2] if len(rows) == 1 and rows[0][1] == 1 else None
    return paths, single


def unit_scope_q(*, user: User, prefix: str = "") -> Q:
    """Return a ``Q`` matching units inside ``user``'s scope; ``prefix`` is the lookup to the unit.

    The query is built from the user's few granted paths (``path LIKE 'p%'``), never from a list of
    unit or case ids, so its size does not grow with the data (field case C18).
    """
    if user.is_superuser and user.is_active:
        return Q()
    paths = unit_scope_paths(user=user)
    if not paths:
        return Q(pk__in=[])
    return reduce(operator.or_, (Q(**{f"{prefix}path__startswith": p}) for p in paths))


def units_in_scope(*, user: User) -> QuerySet[Unit]:
    """Return the units whose cases ``user`` may see (granted units and their descendants)."""
    return Unit.objects.filter(unit_scope_q(user=user))


def user_covers_unit(*, user: User, unit: Unit | None) -> bool:
    """Tell whether ``unit`` lies inside ``user``'s scope (superusers cover every unit)."""
    if user.is_superuser and user.is_active:
        return True
    if unit is None:
        return False
    return any(unit.path.startswith(p) for p in unit_scope_paths(user=user))


def user_is_city_wide(*, user: User) -> bool:
    """Tell whether ``user``'s scope includes a root of the unit tree (sees unassigned cases)."""
    if user.is_superuser and user.is_active:
        return True
    return any(p.count(".") == 1 for p in unit_scope_paths(user=user))


def user_has_role(*, user: User, role: str) -> bool:
    """Tell whether ``user`` is in the group of role ``role``."""
    return user.groups.filter(name=role).exists()


def unit_staff_emails(*, unit: Unit, role: str | None = None, heads_only: bool = False) -> list[str]:
    """Return the e-mail addresses of ``unit``'s active members, optionally only a role or the heads."""
    qs = UnitMembership.objects.filter(unit=unit, user__is_active=True).exclude(user__email="")
    if role:
        qs = qs.filter(user__groups__name=role)
    if heads_only:
        qs = qs.filter(is_head=True)
    return sorted(set(qs.values_list("user__email", flat=True)))


def role_emails(*, role: str) -> list[str]:
    """Return the e-mail addresses of every active user holding ``role`` (e.g. all 分管局领导)."""
    return sorted(
        set(
            User.objects.filter(groups__name=role, is_active=True)
            .exclude(email="")
            .values_list("email", flat=True)
        )
    )


def unit_by_function(*, function: str) -> Unit | None:
    """Return the unit holding ``function`` (e.g. the 网评办), or None when none is configured."""
    return Unit.objects.filter(function=function, is_active=True).first()


def comment_office_emails() -> list[str]:
    """Return the addresses of the 网评办's dispatchers and reviewers (催办 copies go to them)."""
    office = unit_by_function(function=Unit.Function.COMMENT_OFFICE)
    if office is None:
        return []
    return sorted(
        set(unit_staff_emails(unit=office, role=roles.DISPATCHER))
        | set(unit_staff_emails(unit=office, role=roles.OFFICE_REVIEWER))
    )


def handling_units_q() -> Q:
    """Return the ``Q`` of the units that can handle a case (as lead or co-unit).

    A handling unit is active, is not the bureau itself and has no office function: the 网评办
    dispatches and reviews, 纪检督察 supervise, 局领导 sign off; none of them answers a message
    (DESIGN.md §1–2).
    """
    return Q(is_active=True, function="") & ~Q(kind=Unit.Kind.BUREAU)


def unit_is_handling(*, unit: Unit) -> bool:
    """Tell whether ``unit`` can handle a case (see :func:`handling_units_q`)."""
    return unit.is_active and unit.function == "" and unit.kind != Unit.Kind.BUREAU


def unit_leaders_in_charge(*, unit: Unit | None) -> list[User]:
    """Return the 分管局领导 of ``unit``: its own, else those of its nearest ancestor that has any.

    A leader in charge of a district bureau is in charge of its police stations unless a station
    has leaders of its own. Only active users holding the leader role count. Empty when no unit on
    the way to the root has leaders set (then every leader may sign off; DESIGN.md §1).
    """
    if unit is None:
        return []
    ancestor_paths = [unit.path[: i + 1] for i, ch in enumerate(unit.path) if ch == "."]
    rows = (
        Unit.leaders.through.objects.filter(unit__path__in=ancestor_paths, user__is_active=True,
                                            user__groups__name=roles.LEADER)
        .select_related("unit", "user")
    )
    by_path: dict[str, list[User]] = {}
    for row in rows:
        by_path.setdefault(row.unit.path, []).append(row.user)
    for path in reversed(ancestor_paths):
        if path in by_path:
            return sorted(by_path[path], key=lambda u: u.pk)
    return []


def leader_emails_for_unit(*, unit: Unit | None) -> list[str]:
    """Return the e-mails of ``unit``'s leaders in charge, or of every leader when none is set."""
    leaders = unit_leaders_in_charge(unit=unit)
    if not leaders:
        return role_emails(role=roles.LEADER)
    return sorted({u.email for u in leaders if u.email})


def units_led_by_q(*, user: User, prefix: str = "") -> Q:
    """Return the ``Q`` of the units whose 分管局领导 (as :func:`unit_leaders_in_charge` decides) include ``user``.

    Units with no leader in charge anywhere up their chain belong to every leader. Built from the
    unit tree in one query (the tree is small: units, not cases).
    """
    # One query (the case list's leader queue stays within its statement budget, issue 11 §3):
    # every unit with each of its leaders and their groups, filtered here.
    units = {}
    charge = {}
    for pk, path, leader, active, group in Unit.objects.values_list(
        "pk", "path", "leaders__id", "leaders__is_active", "leaders__groups__name"
    ):
        units[pk] = path
        if leader is not None and active and group == roles.LEADER:
            charge.setdefault(path, set()).add(leader)
    units = [Unit(pk=pk, path=path) for pk, path in units.items()]
    mine = []
    for unit in units:
        ancestor_paths = [unit.path[: i + 1] for i, ch in enumerate(unit.path) if ch == "."]
        owners = next((charge[p] for p in reversed(ancestor_paths) if p in charge), None)
        if owners is None or user.pk in owners:
            mine.append(unit.pk)
    return Q(**{f"{prefix}pk__in": mine})
