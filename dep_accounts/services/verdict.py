"""The rules a server token file must pass before it is stored, each written once.

`verdict` is pure: it reads what the pipeline gathered (the account, its current token, the
account that already holds the file's MDM server, the decrypted file and Apple's answer) and
returns the `Refusal` to show, or None. Every entry point (Edit, Add, the API, the command line
and Bulk renewal) reaches it through `services.intake`, so each rule has one wording.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from dep_accounts.apple import schema as apple_schema
from dep_accounts.apple import token as apple_token
from dep_accounts.errors import DomainError
from dep_accounts.models import DEPAccount, ServerToken

APPLE_ID_CHANGED_LABEL = "The Apple ID that manages this server in ABM has changed"


class Refusal(DomainError):
    """A server token file that was not taken; `code` names the rule, `message` what to do."""

    code = "invalid"
    # False for a refusal only Bulk renewal gives: the API's document leaves its code out.
    reaches_api = True


class TokenFileError(Refusal):
    code = "bad_file"


class TokenTooLargeError(TokenFileError):
    code = "too_large"


class AppleRefusedTokenError(Refusal):
    code = "apple_refused"


class AppleUnreachableError(Refusal):
    code = "apple_unreachable"


class WrongServerError(Refusal):
    """The token belongs to another MDM server than this account's, or one already added."""

    code = "wrong_server"

    def __init__(
        self, message: str, *, found: apple_schema.Account, existing: DEPAccount | None
    ) -> None:
        super().__init__(message)
        self.found = found
        self.existing = existing


class AppleIDChangedError(Refusal):
    """The token was downloaded by another Apple ID; the admin must confirm the change."""

    code = "apple_id_changed"

    def __init__(self, message: str, *, previous: str, found: str) -> None:
        super().__init__(message)
        self.previous = previous
        self.found = found


class OlderTokenError(Refusal):
    code = "older_token"


class ConcurrentUploadError(Refusal):
    code = "concurrent_upload"


class Intent(StrEnum):
    """What the admin came to do with the file."""

    # Edit, the API and the command line: the first token of an account, or a renewal.
    ANY = "any"
    # Add DEP Account: the first token of a new account only.
    ADD = "add"
    # Bulk renewal: replace a current token only.
    RENEW = "renew"


@dataclass(frozen=True)
class Confirmations:
    """What the admin has confirmed on purpose; each lifts one refusal."""

    apple_id_changed: bool = False


@dataclass(frozen=True)
class TokenCheck:
    """A decrypted server token, with what Apple says it belongs to (None until asked)."""

    token: apple_token.ServerTokenCredentials
    apple_account: apple_schema.Account | None = None


@dataclass(frozen=True)
class Current:
    """What a file would replace: the account, its current token, and the MDM server's holder.

    `holder` is another DEP account already managing the file's MDM server, if any.
    """

    account: DEPAccount
    token: ServerToken | None = None
    holder: DEPAccount | None = None


def verdict(
    current: Current,
    candidate: TokenCheck,
    confirmations: Confirmations,
    *,
    now: datetime,
    intent: Intent = Intent.ANY,
) -> Refusal | None:
    """The refusal every entry point gives this file, or None when it may be stored.

    Before Apple is asked (`candidate.apple_account` is None) only the file's own rules apply,
    so an expired file is refused without a call to Apple.
    """
    token = candidate.token
    if token.is_expired(now=now):
        return TokenFileError(
            apple_token.TokenExpiredError(expired_at=token.access_token_expiry).message
        )
    found = candidate.apple_account
    if found is None:
        return None
    account = current.account
    if intent == Intent.ADD and current.token is not None:
        return ConcurrentUploadError(
            "This DEP account already received its token in another upload. "
            "Open it from the DEP Accounts list."
        )
    if account.server_uuid and found.server_uuid != account.server_uuid:
        return WrongServerError(
            f"This token is for the MDM server “{found.server_name}” of {found.org_name}, "
            f"not for “{account.server_name}” of {account.org_name}. In Apple Business "
            f"Manager, download the token of “{account.server_name}”, or add this file as "
            "a new DEP account.",
            found=found,
            existing=current.holder,
        )
    if not account.server_uuid and intent == Intent.RENEW:
        return WrongServerError(
            f"“{account.name}” is still being added: upload this file on its Add DEP Account page.",
            found=found,
            existing=None,
        )
    if not account.server_uuid and current.holder is not None:
        return WrongServerError(
            f"This MDM server is already added as “{current.holder.name}” "
            f"(“{found.server_name}” of {found.org_name}). To renew its token, upload the file "
            "on its Edit DEP Account page.",
            found=found,
            existing=current.holder,
        )
    return _renewal_verdict(current.token, candidate, found, confirmations)


def _renewal_verdict(
    current: ServerToken | None,
    candidate: TokenCheck,
    found: apple_schema.Account,
    confirmations: Confirmations,
) -> Refusal | None:
    if current is None:
        return None
    token = candidate.token
    if current.consumer_key_fingerprint == token.consumer_key_fingerprint and (
        current.access_token_expiry == token.access_token_expiry
    ):
        return OlderTokenError(
            "This is the token already in use. In Apple Business Manager, click Download "
            "Token on this MDM server and upload the new file."
        )
    if token.access_token_expiry < current.access_token_expiry:
        return OlderTokenError(
            f"This token expires on {token.access_token_expiry:%-d %b %Y}, before the "
            f"current one ({current.access_token_expiry:%-d %b %Y}): it is an older download. "
            "Upload the token you downloaded last."
        )
    previous = current.admin_apple_id
    if previous and found.admin_id != previous and not confirmations.apple_id_changed:
        return AppleIDChangedError(
            f"This token was downloaded by {found.admin_id}, but the current one by "
            f"{previous}. Tokens must come from the Apple ID that manages this server. If that "
            f"Apple ID has changed in Apple Business Manager, tick “{APPLE_ID_CHANGED_LABEL}” "
            "and save again.",
            previous=previous,
            found=found.admin_id,
        )
    return None
