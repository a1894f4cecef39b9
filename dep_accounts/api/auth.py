"""API authentication and authorisation: bearer API tokens, roles, JSON errors.

Only `Authorization: Bearer <key>` authenticates; a session cookie does not. A request that
carries no key is therefore never acted on, and still goes through the CSRF check like any
page of the console; a request with a key is exempt from CSRF, which guards cookies only.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps

from django.core.exceptions import SuspiciousOperation
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.http.multipartparser import MultiPartParserError
from django.middleware.csrf import CsrfViewMiddleware
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.debug import sensitive_variables

from dep_accounts.errors import DomainError
from dep_accounts.roles import can_view
from dep_accounts.services.api_tokens import api_token_authenticate
from dep_accounts.users import User
from dep_accounts.views.access import bearer_credential

View = Callable[..., HttpResponse]
Permission = Callable[[User], bool]


class APIError(DomainError):
    """An answer other than success: an HTTP status, a stable `code`, a message for people."""

    def __init__(self, status: int, code: str, message: str, **extra: object) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.extra = extra

    def response(self) -> JsonResponse:
        body = {"error": self.message, "code": self.code, **self.extra}
        return JsonResponse(body, status=self.status, json_dumps_params={"ensure_ascii": False})


def _unauthenticated(message: str) -> JsonResponse:
    response = APIError(401, "unauthenticated", message).response()
    response["WWW-Authenticate"] = 'Bearer realm="mdmportal"'
    return response


def _csrf_rejection(request: HttpRequest) -> HttpResponse | None:
    """The console's CSRF check, for a request that did not authenticate with a key."""
    return CsrfViewMiddleware(_no_response).process_view(request, _no_response, (), {})


def _no_response(request: HttpRequest) -> HttpResponse:
    """The view the CSRF check is asked about: not marked exempt, and never called."""
    return HttpResponse()


def api_endpoint(**permissions: Permission) -> Callable[[View], View]:
    """An API view answering the given methods, each allowed to users who pass its check.

    `@api_endpoint(GET=can_view, POST=can_manage)`: viewers read, admins write.
    """

    def decorate(view: View) -> View:
        @csrf_exempt
        @wraps(view)
        @sensitive_variables("key")
        def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
            key = bearer_credential(request)
            if key is None:
                rejection = _csrf_rejection(request)
                if rejection is not None:
                    return rejection
                return _unauthenticated(
                    "Send an API token in the header “Authorization: Bearer <key>”. Create one "
                    "on your page in mdmportal (your name, top right, then API tokens)."
                )
            api_token = api_token_authenticate(key=key)
            if api_token is None:
                return _unauthenticated(
                    "This API token is not valid: it was revoked, it expired, or it is "
                    "mistyped. Create a new one on your page in mdmportal."
                )
            request.user = api_token.user
            try:
                check = permissions.get(request.method or "")
                if check is None:
                    response = APIError(
                        405,
                        "method_not_allowed",
                        f"{request.method} is not allowed here; use {', '.join(permissions)}.",
                    ).response()
                    response["Allow"] = ", ".join(permissions)
                    return response
                if not can_view(request.user):
                    raise APIError(403, "forbidden", "Your account has no role in this portal.")
                if not check(request.user):
                    raise APIError(403, "forbidden", "Viewers can read but not change anything.")
                return view(request, *args, **kwargs)
            except APIError as exc:
                return exc.response()
            except (MultiPartParserError, SuspiciousOperation) as exc:
                # Django would answer a malformed or oversized form with its HTML 400 page.
                return APIError(
                    400,
                    "invalid",
                    f"The request body could not be read as a form ({exc}). Send a well-formed "
                    "multipart/form-data form, or the file alone as the body with its own "
                    "Content-Type.",
                ).response()

        return wrapper

    return decorate
