from __future__ import annotations

from django.apps import AppConfig
from django.db.models.signals import post_migrate


class DepAccountsConfig(AppConfig):
    name = "dep_accounts"
    verbose_name = "Apple DEP"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from dep_accounts import sign_in  # noqa: F401  (connects the sign-in audit receiver)
        from dep_accounts.roles import roles_ensure

        post_migrate.connect(roles_ensure, sender=self)
