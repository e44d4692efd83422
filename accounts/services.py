"""Writes for people and units: the unit tree, membership, access grants and role groups."""

from django.contrib.auth.models import Group, Permission
from django.db import transaction
from django.db.models import Value
from django.db.models.functions import Concat, Substr
from guardian.shortcuts import assign_perm, remove_perm

from accounts import roles
from accounts.models import Unit, UnitMembership, User

ACCESS_UNIT = "accounts.access_unit"


def _path_for(unit: Unit) -> str:
    prefix = unit.parent.path if unit.parent_id else ""
    return f"{prefix}{unit.pk:06d}."


@transaction.atomic
def unit_save(*, unit: Unit) -> Unit:
    """Save a unit and keep the materialised tree path of it and its descendants right.

    Args:
        unit: a new or changed ``Unit``; its ``parent`` may have changed.

    Raises:
        ValueError: when the new parent is the unit itself or one of its descendants.
    """
    if unit.parent_id and unit.pk:
        parent = Unit.objects.get(pk=unit.parent_id)
        if parent.pk == unit.pk or (unit.path and parent.path.startswith(unit.path)):
            raise ValueError("一个单位不能成为自己或下级单位的下级。")
    old_path = unit.path
    unit.save()
    new_path = _path_for(unit)
    if new_path != old_path:
        Unit.objects.filter(pk=unit.pk).update(path=new_path)
        unit.path = new_path
        if old_path:
            Unit.objects.filter(path__startswith=old_path).exclude(pk=unit.pk).update(
                path=Concat(Value(new_path), Substr("path", len(old_path) + 1))
            )
    return unit


@transaction.atomic
def unit_create(*, name: str, code: str, kind: str, parent: Unit | None = None, **fields) -> Unit:
    """Create a unit under ``parent`` (None for a root) and return it."""
    return unit_save(unit=Unit(name=name, code=code, kind=kind, parent=parent, **fields))


def unit_access_grant(*, user: User, unit: Unit) -> None:
    """Give ``user`` access to the cases of ``unit`` and of every unit below it (guardian object perm)."""
    assign_perm(ACCESS_UNIT, user, unit)


def unit_access_revoke(*, user: User, unit: Unit) -> None:
    """Take back the access granted by :func:`unit_access_grant`."""
    remove_perm(ACCESS_UNIT, user, unit)


@transaction.atomic
def membership_add(*, user: User, unit: Unit, is_head: bool = False, title: str = "") -> UnitMembership:
    """Make ``user`` a member of ``unit`` and grant the unit access that membership brings.

    Idempotent: adding an existing member updates ``is_head`` and ``title``.
    """
    membership, _ = UnitMembership.objects.update_or_create(
        user=user, unit=unit, defaults={"is_head": is_head, "title": title}
    )
    unit_access_grant(user=user, unit=unit)
    return membership


@transaction.atomic
def membership_remove(*, membership: UnitMembership) -> None:
    """Remove a membership and the unit access it brought."""
    unit_access_revoke(user=membership.user, unit=membership.unit)
    membership.delete()


@transaction.atomic
def roles_sync() -> dict[str, Group]:
    """Create or update one group per role of :mod:`accounts.roles` with exactly its permissions.

    Returns:
        mapping of role code to its ``Group``.

    Raises:
        Permission.DoesNotExist: when a permission named in ``ROLE_PERMISSIONS`` is missing
        (run migrations first).
    """
    groups = {}
    for code, perm_names in roles.ROLE_PERMISSIONS.items():
        group, _ = Group.objects.get_or_create(name=code)
        perms = []
        for name in perm_names:
            app_label, codename = name.split(".")
            perms.append(Permission.objects.get(content_type__app_label=app_label, codename=codename))
        group.permissions.set(perms)
        groups[code] = group
    return groups


def user_role_set(*, user: User, role_codes: list[str]) -> None:
    """Put ``user`` in exactly the role groups named by ``role_codes`` (other groups are kept)."""
    role_groups = Group.objects.filter(name__in=roles.ROLE_PERMISSIONS.keys())
    user.groups.remove(*[g for g in role_groups if g.name not in role_codes])
    user.groups.add(*[g for g in role_groups if g.name in role_codes])
