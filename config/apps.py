"""The project's own application configurations."""

from django.contrib.admin.apps import AdminConfig


class CaseworkAdminConfig(AdminConfig):
    """``django.contrib.admin`` with :class:`config.admin_site.CaseworkAdminSite` as ``admin.site``."""

    default_site = "config.admin_site.CaseworkAdminSite"
