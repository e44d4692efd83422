"""The model permission backend of the site: Django's, reading a user's permissions in one statement.

Django's ``ModelBackend`` reads the permissions given to the user and those of the user's groups
with two statements on every request that asks ``has_perm`` (every admin page). Here both come
from one statement (issue 11 §3: a case list page within 12 statements); the set, its cache on the
user object for the request (``_perm_cache``) and every other behaviour are Django's.
"""

from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.models import Permission
from django.db.models import Q


class OneQueryModelBackend(ModelBackend):
    """``django.contrib.auth.backends.ModelBackend`` with ``get_all_permissions`` in one statement."""

    def get_all_permissions(self, user_obj, obj=None):
        """Return the ``"app_label.codename"`` set of the user's own and group permissions (Django's set)."""
        if not user_obj.is_active or user_obj.is_anonymous or obj is not None:
            return set()
        if not hasattr(user_obj, "_perm_cache"):
            if user_obj.is_superuser:
                perms = Permission.objects.all()
            else:
                perms = Permission.objects.filter(
                    Q(pk__in=user_obj.user_permissions.values("pk"))
                    | Q(pk__in=Permission.objects.filter(group__in=user_obj.groups.all()).values("pk"))
                )
            user_obj._perm_cache = {
                f"{app_label}.{codename}"
                for app_label, codename in perms.values_list("content_type__app_label", "codename").order_by()
            }
        return user_obj._perm_cache
