"""Root URLs: the admin is the staff application; i18n for the language switch."""

from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

from casework.api import messages_push

urlpatterns = [
    path("", RedirectView.as_view(url="/admin/", permanent=False)),
    path("i18n/", include("django.conf.urls.i18n")),
    path("api/messages/", messages_push, name="api_messages_push"),
    path("admin/assessment/", include("assessment.urls")),
    path("admin/", admin.site.urls),
]
