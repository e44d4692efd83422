"""The one base of every admin of the site, so site-wide admin rules live in one place.

Every ``ModelAdmin`` and inline registered by this project derives from :class:`StaffModelAdmin`,
:class:`StaffTabularInline` or :class:`StaffAdminMixin` (third-party admins are re-registered on
it); ``tests/test_admin_base.py`` fails when one does not. Rules that hold for every admin page
(which URL lookups a changelist accepts, optimistic locking of forms and actions, …) are added
here as mixins, not per admin.
"""

from django.contrib import admin

from accounts.admin_versioning import VersionedAdminMixin


class StaffAdminMixin(VersionedAdminMixin):
    """Behaviour shared by every admin of the site (see the module docstring).

    :class:`~accounts.admin_versioning.VersionedAdminMixin`: every change form, list edit, action
    and delete carries the version the user saw; a stale submit is refused, naming who changed what.
    """


class StaffModelAdmin(StaffAdminMixin, admin.ModelAdmin):
    """Base of every ``ModelAdmin`` of the site."""


class StaffTabularInline(StaffAdminMixin, admin.TabularInline):
    """Base of every tabular inline of the site."""


def admin_adopt(model) -> None:
    """Re-register a third-party model's admin (and its inlines) on :class:`StaffAdminMixin`, keeping its options.

    Args:
        model: a model whose admin another app registered (e.g. ``auth.Group``). Its app must come
            before the caller's in ``INSTALLED_APPS`` so that its admin is registered already.

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
    admin.site.register(model, type(current.__name__, (StaffAdminMixin, current), {"inlines": inlines}))
