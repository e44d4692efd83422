"""Every admin registered on the site derives from the one base, so site-wide admin rules reach it."""

from django.contrib import admin

from accounts.admin_base import StaffAdminMixin


def test_every_registered_admin_and_inline_derives_from_the_site_base():
    strays = []
    for model, model_admin in admin.site._registry.items():
        if not isinstance(model_admin, StaffAdminMixin):
            strays.append(model._meta.label)
        for inline in model_admin.inlines:
            if not issubclass(inline, StaffAdminMixin):
                strays.append(f"{model._meta.label} inline {inline.__name__}")
    assert strays == []
    assert len(admin.site._registry) >= 28
