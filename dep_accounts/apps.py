from __future__ import annotations

import logging

from django.apps import AppConfig
from django.conf import settings
from django.db.models.signals import post_migrate

logger = logging.getLogger(__name__)

DEBUG_WARNING = (
    "DEBUG IS ON: development secrets from %s, error pages that show local variables. "
    "Never serve real accounts like this: set DEBUG=false and the secrets in the environment."
)


class DepAccountsConfig(AppConfig):
    name = "dep_accounts"
    verbose_name = "Apple DEP"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from dep_accounts import sign_in  # noqa: F401  (connects the sign-in audit receiver)
        from dep_accounts.roles import roles_ensure

        post_migrate.connect(roles_ensure, sender=self)
        if settings.DEBUG:
            logger.warning(DEBUG_WARNING, settings.VAR_DIR)
