from __future__ import annotations

from django.apps import AppConfig


class DepAccountsConfig(AppConfig):
    name = "dep_accounts"
    verbose_name = "Apple DEP"
    default_auto_field = "django.db.models.BigAutoField"
