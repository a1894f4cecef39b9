"""The signed-in user's own page: their API tokens, created and revoked here."""

from __future__ import annotations

from datetime import date, datetime, time

from django import forms
from django.contrib import messages
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.debug import sensitive_variables

from dep_accounts.models import APIToken
from dep_accounts.plain_text import name_validate
from dep_accounts.roles import can_view
from dep_accounts.services.api_tokens import api_token_create, api_token_revoke


class APITokenForm(forms.Form):
    name = forms.CharField(
        label="Name",
        max_length=100,
        validators=[name_validate],
        help_text="What the token is for, such as “renewal script on build01”.",
        error_messages={"required": "Give the token a name, to know later what uses it."},
    )
    expires_on = forms.DateField(
        label="Expires on",
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}),
        help_text="Optional. From the start of this day the API refuses the token.",
    )

    def clean_expires_on(self) -> date | None:
        expires_on = self.cleaned_data["expires_on"]
        if expires_on is not None and expires_on <= timezone.localdate():
            raise forms.ValidationError("Choose a day after today, or leave it empty.")
        return expires_on

    def expires_at(self) -> datetime | None:
        """The start of the chosen day in the portal's time zone."""
        expires_on = self.cleaned_data["expires_on"]
        if expires_on is None:
            return None
        return timezone.make_aware(datetime.combine(expires_on, time.min))


@sensitive_variables("created")
@never_cache
def me(request: HttpRequest) -> HttpResponse:
    # Viewers too: their API tokens read, as they do in the console.
    if not request.user.is_authenticated:
        return redirect_to_login(request.get_full_path())
    if not can_view(request.user):
        raise PermissionDenied("Your account has no role in this portal.")
    if "revoke" in request.POST:
        api_token = get_object_or_404(
            APIToken, pk=_int_or_none(request.POST["revoke"]), user=request.user
        )
        api_token_revoke(api_token=api_token, actor=request.user)
        messages.success(request, f"Revoked the API token “{api_token.name}”.")
        return redirect("dep_accounts:me")
    form = APITokenForm(request.POST or None)
    created = None
    if request.method == "POST" and form.is_valid():
        # Rendered, not redirected: the key must not travel through the session's messages.
        created = api_token_create(
            user=request.user, name=form.cleaned_data["name"], expires_at=form.expires_at()
        )
        form = APITokenForm()
    context = {
        "form": form,
        "created": created,
        "api_tokens": APIToken.objects.filter(user=request.user),
        "now": timezone.now(),
    }
    return render(request, "dep_accounts/me.html", context)


def _int_or_none(value: str) -> int | None:
    return int(value) if value.isdigit() else None
