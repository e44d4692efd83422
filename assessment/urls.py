"""Staff pages of the assessment app, served under /admin/assessment/ inside the admin site."""

from django.contrib import admin
from django.urls import path

from assessment import views

app_name = "assessment"

urlpatterns = [
    path("dashboard/", admin.site.admin_view(views.dashboard_view), name="dashboard"),
    path("dashboard/data/", admin.site.admin_view(views.dashboard_data_view), name="dashboard_data"),
    path("report/", admin.site.admin_view(views.report_view), name="report"),
    path("report/cases/", admin.site.admin_view(views.report_cases_view), name="report_cases"),
    path("report/export/", admin.site.admin_view(views.report_export_view), name="report_export"),
    path("articles/for-case/<int:case_id>/", admin.site.admin_view(views.articles_for_case_view),
         name="articles_for_case"),
]
