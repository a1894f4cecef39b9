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


def viewer_required(view: View) -> View:
    """Read pages: viewers and admins may look; only admins may POST."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        if not can_view(request.user):
            raise PermissionDenied("Your account has no role in this portal.")
        if request.method not in READ_METHODS and not can_manage(request.user):
            raise PermissionDenied("Viewers can look but not change anything.")
        return view(request, *args, **kwargs)

    return wrapper


def role_required(view: View) -> View:
    """The user's own things (API tokens, calendar feed): any role, POST included."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        if not can_view(request.user):
            raise PermissionDenied("Your account has no role in this portal.")
        return view(request, *args, **kwargs)

    return wrapper


def admin_required(view: View) -> View:
    """Pages that change things: admins only, whatever the method."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        if not can_manage(request.user):
            raise PermissionDenied("Only admins can do this.")
        return view(request, *args, **kwargs)

    return wrapper


@sensitive_variables()
def bearer_credential(request: HttpRequest) -> str | None:
    """The credential of an `Authorization: Bearer <credential>` header, or None."""
    scheme, _, credential = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not credential.strip():
        return None
    return credential.strip()
