"""The DEP web service's refusals: Apple's error codes and the DEPError an admin is shown.

No Django. `dep_error` turns one of Apple's error answers into the DEPError subclass that says
what to do; the codes it knows and where each comes from are in docs/apple-answers.md.
"""

from __future__ import annotations

import requests

from dep_accounts.apple.retry_after import retry_after_seconds

# Apple's 429 need not say how long to wait; then the next try waits a minute.
THROTTLE_WAIT_DEFAULT = 60.0
# A longer wait asked for is taken as a day: the sync is rescheduled, never put off for years.
THROTTLE_WAIT_LIMIT = 86_400.0
# Checked in this order, case-sensitively: the first found anywhere in an error body is Apple's
# code, whatever the status, quoting, trailing newline or "DEP auth error: 403 Forbidden: " prefix.
# The lower-case ones are what Apple's live service answers for tokens (docs/apple-answers.md):
# a token reset by a newer download in ABM gets 403 (or 401) "token_rejected" or
# "signature_invalid" on /session and API calls (fleetdm/fleet#43916, #47700; Fleet's
# server/mdm/nanodep/godep/account_test.go); a token whose keys do not match gets 400
# oauth_problem_adviceBad Request or oauth_problem_adviceUnauthorized (fleetdm/fleet#11416,
# petarov/apple-mdm-clients); expired credentials get token_expiredForbidden.
APPLE_CODES = (
    "T_C_NOT_SIGNED", "token_rejected", "signature_invalid", "token_expired",
    "oauth_problem_advice", "ACCESS_DENIED", "FORBIDDEN", "UNAUTHORIZED", "EXPIRED_CURSOR",
    "INVALID_CURSOR", "EXHAUSTED_CURSOR", "CURSOR_REQUIRED", "TOO_MANY_REQUESTS",
)  # fmt: skip
# Apple's answers that mean "this server token is no longer valid": it was reset or revoked.
TOKEN_RESET_CODES = frozenset({"token_rejected", "signature_invalid"})


class DEPError(Exception):
    """Apple's DEP web service refused or failed; `message` is for the admin."""

    default_message = "Apple's DEP web service refused the request."

    def __init__(self, message: str | None = None, *, status: int | None = None, code: str = ""):
        self.message = message or self.default_message
        self.status = status
        self.code = code
        super().__init__(self.message)


class TokenRejectedError(DEPError):
    default_message = (
        "Apple rejected this server token: it was reset by a newer download in Apple Business "
        "Manager, or has expired. Download a new token in ABM and upload it."
    )


class TokenUnusableError(DEPError):
    """Apple cannot use the token's OAuth values at all: the file does not match, or expired."""

    default_message = (
        "Apple cannot use this server token: the token file does not match the MDM server's "
        "keys, or it is damaged. Download a new token for this MDM server in Apple Business "
        "Manager and upload that file."
    )


class TermsNotSignedError(DEPError):
    default_message = (
        "Apple requires your organisation to accept its latest terms and conditions. Sign in "
        "to Apple Business Manager as an administrator, accept them, then try again."
    )


class AccessDeniedError(DEPError):
    default_message = (
        "Apple denied this MDM server access to the DEP web service. Check in Apple Business "
        "Manager that the MDM server still exists, then download and upload a new token."
    )


class CursorExpiredError(DEPError):
    default_message = "Apple's device cursor is older than 7 days: a full device fetch is needed."


class CursorInvalidError(DEPError):
    default_message = "Apple does not recognise the device cursor: a full device fetch is needed."


class CursorExhaustedError(DEPError):
    default_message = "The full device fetch is complete: continue with incremental syncs."


class ThrottledError(DEPError):
    """Apple asked to wait `retry_after` seconds, longer than the client waits by itself."""

    def __init__(
        self,
        message: str | None = None,
        *,
        retry_after: float = THROTTLE_WAIT_DEFAULT,
        status: int | None = None,
        code: str = "",
    ):
        self.retry_after = retry_after
        message = message or (
            f"Apple asked to wait {retry_after:.0f} seconds before the next request; "
            "it will be retried then."
        )
        super().__init__(message, status=status, code=code)


class AppleUnavailableError(DEPError):
    default_message = (
        "Apple's DEP web service could not be reached or answered with an error. "
        "Nothing was changed; it will be tried again later."
    )


class AppleRequestError(DEPError):
    """Any other refusal (a 4xx); `code` is Apple's error code."""


def apple_code(body: str) -> str:
    """Apple's error code from a plain-text body, quoted (as depsim does) or not."""
    text = body.strip().strip('"').strip()
    known = next((code for code in APPLE_CODES if code in text), None)
    return known or (text.splitlines()[0][:100] if text else "")


def dep_error(response: requests.Response, *, on_session: bool) -> DEPError:
    """The DEPError for one of Apple's refusals."""
    status, code = response.status_code, apple_code(response.text)
    wait = retry_after_seconds(response.headers.get("Retry-After"))
    if wait is not None:
        wait = min(wait, THROTTLE_WAIT_LIMIT)
    if status == 429 or (status == 503 and wait is not None):
        retry_after = THROTTLE_WAIT_DEFAULT if wait is None else wait
        return ThrottledError(retry_after=retry_after, status=status, code=code)
    if status >= 500:
        return AppleUnavailableError(
            f"Apple's DEP web service failed (HTTP {status}). Nothing was changed; "
            "it will be tried again later.",
            status=status,
            code=code,
        )
    if code in TOKEN_RESET_CODES:
        return TokenRejectedError(status=status, code=code)
    if code == "token_expired":
        return TokenUnusableError(
            "Apple says this server token has expired. Download a new token for this MDM server "
            "in Apple Business Manager and upload that file.",
            status=status,
            code=code,
        )
    if code == "oauth_problem_advice":
        return TokenUnusableError(status=status, code=response.text.strip().strip('"')[:100])
    known: dict[str, type[DEPError]] = {
        "T_C_NOT_SIGNED": TermsNotSignedError,
        "EXPIRED_CURSOR": CursorExpiredError,
        "INVALID_CURSOR": CursorInvalidError,
        "EXHAUSTED_CURSOR": CursorExhaustedError,
    }
    if code in known:
        return known[code](status=status, code=code)
    if on_session and status == 401:
        return TokenRejectedError(status=status, code=code)
    if status in (401, 403):
        return AccessDeniedError(status=status, code=code)
    return AppleRequestError(
        f"Apple refused the request ({code or f'HTTP {status}'}).", status=status, code=code
    )
