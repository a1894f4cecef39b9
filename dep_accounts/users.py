"""The portal's user in annotations: the model AUTH_USER_MODEL names, and a signed-in request.

django-stubs types `get_user_model()` and `AbstractBaseUser` loosely (no groups, no
permissions) while every foreign key to AUTH_USER_MODEL expects the concrete model. Services
and views name the user through `User` here, so a custom user model changes this one line.
"""

from __future__ import annotations

from typing import TypeAlias

from django.contrib.auth import models as auth_models
from django.http import HttpRequest

User: TypeAlias = auth_models.User


class SignedInRequest(HttpRequest):
    """A request that `viewer_required`, `role_required`, `admin_required` or `api_endpoint`
    let through: its user is signed in, never anonymous."""

    user: User
