"""The admin site of the casework site: Django's, with the module list read only when a page shows it.

``AdminSite.each_context`` builds the whole module list (``get_app_list``: every registered model,
a permission check each) for every admin page, for the navigation sidebar. The work lists leave
that sidebar out (``templates/admin/change_list.html``), so on the pages staff open most the list
was built and thrown away: about 3 ms of CPU of every list request (issue 11 §3). Here the list
is built on first use and kept for the request: the sidebar of a form page and the index read it
as before, a list page never builds it.
"""

from django.contrib import admin
from django.utils.functional import SimpleLazyObject


class CaseworkAdminSite(admin.AdminSite):
    """Django's admin site whose ``get_app_list`` is computed lazily, once per request and app."""

    def get_app_list(self, request, app_label=None):
        """Return the module list of ``request``'s user as Django does, computed when first read.

        The value is a lazy list (iteration, ``len``, indexing and truth as a list), shared by
        ``each_context`` and the index within one request.
        """
        cache = request.__dict__.setdefault("_casework_app_lists", {})
        if app_label not in cache:
            build = super().get_app_list
            cache[app_label] = SimpleLazyObject(lambda: build(request, app_label))
        return cache[app_label]
