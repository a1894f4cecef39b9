"""Bulk renewal of content tokens: many .vpptoken files at once, each matched to its location.

ABM names each file after its location, but names can change: a file is matched by the location
Apple says it serves (`client/config`'s uId), then takes the one intake path as a renewal
(intent RENEW), so every rule and refusal is the same as on Edit Content Token.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from django.views.decorators.debug import sensitive_variables

from dep_accounts.models import ContentToken
from dep_accounts.services.content_tokens.intake import (
    content_token_check,
    content_token_read,
    content_token_refusal_record,
    content_token_take,
)
from dep_accounts.services.content_tokens.verdict import ContentTokenCheck
from dep_accounts.services.intake import TokenFile
from dep_accounts.services.verdict import Intent, Refusal
from dep_accounts.users import User


class NoLocationError(Refusal):
    code = "no_location"
    reaches_api = False


def content_token_for_location(check: ContentTokenCheck) -> ContentToken:
    """The content token a checked file renews: the one for the location Apple names."""
    matched = ContentToken.objects.filter(location_uid=check.location.uid).first()
    if matched is None:
        raise NoLocationError(
            f"No content token here is for the location “{check.location.location_name}”: "
            "add it on Add Content Token first."
        )
    return matched


@dataclass(frozen=True)
class ContentTokenRenewal:
    """One file: the content token it renewed, or why not (nothing changed for it)."""

    file_name: str
    content_token: ContentToken | None
    problem: str = ""


@sensitive_variables()
def content_tokens_bulk_renew(
    *, token_files: Sequence[TokenFile], actor: User | None
) -> list[ContentTokenRenewal]:
    """Renew each location a file is for; one file's refusal stops only that file."""
    results = []
    for token_file in token_files:
        matched = None
        try:
            check = content_token_check(token_file=content_token_read(token_file))
            matched = content_token_for_location(check)
            renewed = content_token_take(
                content_token=matched,
                check=check,
                actor=actor,
                file_name=token_file.name,
                intent=Intent.RENEW,
            )
        except Refusal as refusal:
            # A refusal of the take itself is recorded there; earlier ones are recorded here.
            if matched is None:
                content_token_refusal_record(None, actor, refusal, token_file.name)
            results.append(ContentTokenRenewal(token_file.name, matched, refusal.message))
            continue
        results.append(ContentTokenRenewal(token_file.name, renewed))
    return results
