from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class CaseworkConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "casework"
    verbose_name = _("网民留言办理")

    def ready(self) -> None:
        from django.db.models.signals import post_migrate

        from casework import checks  # noqa: F401  (registers system checks)
        from casework.defaults import defaults_on_post_migrate

        post_migrate.connect(defaults_on_post_migrate, sender=self, dispatch_uid="casework_defaults")
