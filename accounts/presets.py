"""Bureau presets: a unit tree and its staff described as data (JSON), loaded through the services.

The shipped preset ``accounts/data/demo_bureau.json`` builds a bureau of the shape DESIGN.md §2
describes (city bureau with 网评办, 纪检督察 and leaders; police-type units; seven district bureaus)
with 42 staff. Everything it creates is ordinary data that superusers edit in the admin.
"""

from dataclasses import dataclass, field
import json
from pathlib import Path

from django.db import transaction

from accounts.models import Unit, User
from accounts.services import membership_add, roles_sync, unit_access_grant, unit_save, user_role_set

DEMO_PRESET = Path(__file__).resolve().parent / "data" / "demo_bureau.json"


@dataclass
class PresetResult:
    units_created: int = 0
    users_created: int = 0
    logins: list[tuple[str, str, str]] = field(default_factory=list)  # (username, name, roles)
    showcase: list[str] = field(default_factory=list)  # usernames to print, one or two per role


@transaction.atomic
def bureau_preset_load(*, path: Path = DEMO_PRESET, password: str, email_domain: str = "bureau.invalid") -> PresetResult:
    """Create or update the units and staff described by the preset file at ``path``.

    Idempotent: units are matched by ``code`` and staff by ``username``; existing users keep their
    passwords. New users get ``password`` and the e-mail ``<username>@<email_domain>``.

    Args:
        path: JSON file with ``units`` (code, name, kind, parent, function, keywords, email) and
            ``staff`` (username, full_name, roles, unit, is_head, title, city_wide, and for leaders
            ``in_charge_of``: the codes of the units they are in charge of, 分管).
        password: password for newly created users.

    Raises:
        KeyError: when a staff member names an unknown unit or a unit an unknown parent.
    """
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    roles_sync()
    result = PresetResult()
    units: dict[str, Unit] = {}
    for spec in data["units"]:
        unit = Unit.objects.filter(code=spec["code"]).first()
        if unit is None:
            unit = Unit(code=spec["code"])
            result.units_created += 1
        unit.name = spec["name"]
        unit.kind = spec["kind"]
        unit.function = spec.get("function", "")
        unit.parent = units[spec["parent"]] if spec.get("parent") else None
        unit.keywords = "\n".join(spec.get("keywords", []))
        unit.email = spec.get("email", "")
        units[spec["code"]] = unit_save(unit=unit)
    root = next(u for u in units.values() if u.parent_id is None)
    for spec in data["staff"]:
        user = User.objects.filter(username=spec["username"]).first()
        if user is None:
            user = User.objects.create_user(
                username=spec["username"],
                password=password,
                email=f"{spec['username']}@{email_domain}",
                is_staff=True,
            )
            result.users_created += 1
        user.full_name = spec["full_name"]
        user.save(update_fields=["full_name"])
        user_role_set(user=user, role_codes=spec["roles"])
        membership_add(user=user, unit=units[spec["unit"]], is_head=spec.get("is_head", False),
                       title=spec.get("title", ""))
        if spec.get("city_wide"):
            unit_access_grant(user=user, unit=root)
        for code in spec.get("in_charge_of", []):
            units[code].leaders.add(user)
        result.logins.append((user.username, user.full_name, ",".join(spec["roles"])))
    result.showcase = list(data.get("demo_logins", []))
    return result
