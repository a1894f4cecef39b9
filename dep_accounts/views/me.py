"""The signed-in user's own page: their API tokens, created and revoked here."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.debug import sensitive_variables

from dep_accounts.forms import APITokenForm
from dep_accounts.models import APIToken
from dep_accounts.services.api_tokens import api_token_create, api_token_revoke
from dep_accounts.users import SignedInRequest
from dep_accounts.views.access import role_required


@role_required
@sensitive_variables("created")
@never_cache
def me(request: SignedInRequest) -> HttpResponse:
    # Viewers too: their API tokens read, as they do in the console.
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
