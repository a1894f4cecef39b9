"""The rules a content token file must pass before it is stored, each written once.

`content_token_verdict` is pure, like the server tokens' `verdict`: it weighs what the pipeline
gathered (the location's current content token, the one that already holds the file's location,
the decoded file and Apple's `client/config` answer) and returns the `Refusal` to show, or None.
The refusals share the server tokens' classes and codes where the rule is the same (a bad file,
Apple refusing or unreachable, an older file); two are the content tokens' own.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from dep_accounts.apple import vpp as apple_vpp
from dep_accounts.apple import vpp_client
from dep_accounts.models import ContentToken
from dep_accounts.services.verdict import (
    ConcurrentUploadError,
    Intent,
    OlderTokenError,
    Refusal,
    TokenFileError,
)

TAKE_OVER_LABEL = "Take over from the other MDM"


class WrongLocationError(Refusal):
    """The file is for another location than this content token's, or one already added."""

    code = "wrong_location"

    def __init__(
        self, message: str, *, found: vpp_client.ClientConfig, existing: ContentToken | None
    ) -> None:
        super().__init__(message)
        self.found = found
        self.existing = existing


class AnotherMDMError(Refusal):
    """Another MDM manages the location; the admin must confirm taking it over."""

    code = "another_mdm"

    def __init__(self, message: str, *, mdm_name: str) -> None:
        super().__init__(message)
        self.mdm_name = mdm_name


@dataclass(frozen=True)
class ContentTokenConfirmations:
    """What the admin has confirmed on purpose; each lifts one refusal."""

    take_over: bool = False


@dataclass(frozen=True)
class ContentTokenCheck:
    """A decoded .vpptoken, with Apple's answer about its location (None until asked)."""

    token: apple_vpp.ContentToken
    config: vpp_client.ClientConfig | None = None

    @property
    def location(self) -> vpp_client.ClientConfig:
        """Apple's answer: the pipeline asks before anything reads it."""
        assert self.config is not None, "Apple is asked before the location is read"
        return self.config


def other_mdm_name(config: vpp_client.ClientConfig, *, our_mdm_id: str) -> str:
    """The MDM that manages the location, when it is not this portal ("" otherwise)."""
    mdm = config.mdm_info
    if mdm is None or mdm.id == our_mdm_id:
        return ""
    return mdm.name or mdm.id


@dataclass(frozen=True)
class CurrentLocation:
    """What a file would replace: the content token being renewed (None when adding one) and
    the content token that already holds the file's location, if another."""

    content_token: ContentToken | None = None
    holder: ContentToken | None = None


def content_token_verdict(
    current: CurrentLocation,
    candidate: ContentTokenCheck,
    confirmations: ContentTokenConfirmations,
    *,
    now: datetime,
    our_mdm_id: str,
    intent: Intent = Intent.ANY,
) -> Refusal | None:
    """The refusal every entry point gives this file, or None when it may be stored.

    Before Apple is asked (`candidate.config` is None) only the file's own rules apply, so an
    expired file is refused without a call to Apple.
    """
    token = candidate.token
    if token.is_expired(now=now):
        expired = apple_vpp.ContentTokenExpiredError(expired_at=token.expires_at)
        return TokenFileError(expired.message)
    found = candidate.config
    if found is None:
        return None
    existing = current.content_token
    if existing is None and intent == Intent.RENEW:
        return ConcurrentUploadError("This content token no longer exists. Reload the list.")
    if existing is not None and found.uid != existing.location_uid:
        return WrongLocationError(
            f"This content token is for the location “{found.location_name}” "
            f"({found.country or 'no country'}), not for “{existing.location_name}” "
            f"({existing.country or 'no country'}). In Apple Business Manager, download the "
            f"content token of “{existing.location_name}”, or add this file as a new content "
            "token.",
            found=found,
            existing=current.holder,
        )
    if existing is None and current.holder is not None:
        return WrongLocationError(
            f"The location “{found.location_name}” is already added. To renew its content "
            "token, upload the file on its Edit Content Token page.",
            found=found,
            existing=current.holder,
        )
    refusal = _renewal_verdict(existing, token)
    if refusal is not None:
        return refusal
    mdm_name = other_mdm_name(found, our_mdm_id=our_mdm_id)
    if mdm_name and not confirmations.take_over:
        return AnotherMDMError(
            f"Apple says the location “{found.location_name}” is managed by another MDM "
            f"(“{mdm_name}”). Apple asks that only one MDM manage a location: taking it over "
            "stops that MDM from assigning its apps and books. If that is what you want, tick "
            f"“{TAKE_OVER_LABEL}” and save again.",
            mdm_name=mdm_name,
        )
    return None


def _renewal_verdict(
    existing: ContentToken | None, token: apple_vpp.ContentToken
) -> Refusal | None:
    if existing is None:
        return None
    if existing.fingerprint == token.fingerprint:
        return OlderTokenError(
            "This is the content token already in use. In Apple Business Manager, download a "
            "new content token for this location and upload that file."
        )
    if token.expires_at < existing.expires_at:
        return OlderTokenError(
            f"This content token expires on {token.expires_at:%-d %b %Y}, before the current "
            f"one ({existing.expires_at:%-d %b %Y}): it is an older download. Upload the content "
            "token you downloaded last."
        )
    return None
