from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class CaseworkConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "casework"
    verbose_name = _("网民留言办理")

    def ready(self) -> None:
        from casework import checks  # noqa: F401  (registers system checks)
