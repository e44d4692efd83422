"""Root URLs: the admin is the staff application; i18n for the language switch."""

from django.contrib import admin
from django.shortcuts import redirect
from django.templatetags.static import static
from django.urls import include, path
from django.views.generic import RedirectView
from django.views.i18n import JavaScriptCatalog

from casework.api import messages_push


def favicon(request):
    """Browsers ask for /favicon.ico on every page that names no icon: send them the site's."""
    return redirect(static("casework/favicon.ico"))


urlpatterns = [
    path("favicon.ico", favicon),
    path("", RedirectView.as_view(url="/admin/", permanent=False)),
    path("i18n/", include("django.conf.urls.i18n")),
    # The dashboard's script takes its words from the catalogue too (locale/en/LC_MESSAGES/djangojs.po).
    path("jsi18n/", JavaScriptCatalog.as_view(), name="javascript-catalog"),
    path("api/messages/", messages_push, name="api_messages_push"),
    path("admin/assessment/", include("assessment.urls")),
    path("admin/", admin.site.urls),
]
