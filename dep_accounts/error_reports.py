"""Error reports (Django's debug 500 page, the emails to ADMINS) that never show a secret.

Django hides the variables named by @sensitive_variables and the POST fields named by
@sensitive_post_parameters only when DEBUG is off. A debug page of this portal can hold a
private key or a decrypted server token, so they are hidden whatever DEBUG says.
"""

from __future__ import annotations

from django.http import HttpRequest
from django.views.debug import SafeExceptionReporterFilter


class SecretsHiddenReporterFilter(SafeExceptionReporterFilter):
    def is_active(self, request: HttpRequest | None) -> bool:
        return True
