"""Who may open which page: anonymous users sign in, viewers read, admins change things."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.views.decorators.debug import sensitive_variables

from dep_accounts.roles import can_manage, can_view

View = Callable[..., HttpResponse]
READ_METHODS = {"GET", "HEAD"}


def _signed_in_and(refusal: Callable[[HttpRequest], str | None]) -> Callable[[View], View]:
    """Send anonymous users to sign in; refuse signed-in users for whom `refusal` gives a reason."""

    def decorator(view: View) -> View:
        @wraps(view)
        def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
            if not request.user.is_authenticated:
                return redirect_to_login(request.get_full_path())
            reason = refusal(request)
            if reason:
                raise PermissionDenied(reason)
            return view(request, *args, **kwargs)

        return wrapper

    return decorator


def _no_role(request: HttpRequest) -> str | None:
    return None if can_view(request.user) else "Your account has no role in this portal."


def _viewer_refusal(request: HttpRequest) -> str | None:
    if not can_view(request.user):
        return _no_role(request)
    if request.method not in READ_METHODS and not can_manage(request.user):
        return "Viewers can look but not change anything."
    return None


def _not_admin(request: HttpRequest) -> str | None:
    return None if can_manage(request.user) else "Only admins can do this."


def viewer_required(view: View) -> View:
    """Read pages: viewers and admins may look; only admins may POST."""
    return _signed_in_and(_viewer_refusal)(view)


def role_required(view: View) -> View:
    """The user's own things (API tokens, calendar feed): any role, POST included."""
    return _signed_in_and(_no_role)(view)


def admin_required(view: View) -> View:
    """Pages that change things: admins only, whatever the method."""
    return _signed_in_and(_not_admin)(view)


@sensitive_variables()
def bearer_credential(request: HttpRequest) -> str | None:
    """The credential of an `Authorization: Bearer <credential>` header, or None."""
    scheme, _, credential = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not credential.strip():
        return None
    return credential.strip()
