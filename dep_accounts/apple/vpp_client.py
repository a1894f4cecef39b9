"""Apple's "Apps and Books for Organizations" service v2, as the portal calls it.

No Django. An AppsBooksClient is built from a ContentToken and a base URL
(https://vpp.itunes.apple.com/mdm/v2 in production, applesim's /mdm/v2 in tests and demos); the
whole .vpptoken text is the bearer credential. Apple's answers become frozen dataclasses and its
error numbers AppsBooksError subclasses whose `message` tells an admin what to do. Rate limits
(9646, HTTP 429) and 5xx are retried after Apple's Retry-After, a bounded number of times, with
an injectable sleeper. See docs/apple-vpp-apns.md.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import Any

import requests

from dep_accounts.apple.retry_after import retry_after_seconds
from dep_accounts.apple.vpp import DOWNLOAD_AGAIN, ContentToken


class AppsBooksError(Exception):
    """Apple's Apps and Books service refused or failed; `message` is for the admin."""

    default_message = "Apple's Apps and Books service refused the request."

    def __init__(
        self, message: str | None = None, *, status: int | None = None, error_number: int = 0
    ) -> None:
        self.message = message or self.default_message
        self.status = status
        self.error_number = error_number
        super().__init__(self.message)


class AppsBooksTokenExpiredError(AppsBooksError):
    default_message = "Apple says this content token has expired (error 9621). " + DOWNLOAD_AGAIN


class AppsBooksTokenRevokedError(AppsBooksError):
    default_message = (
        "Apple has revoked this content token (error 9625): the Apple Account that downloaded "
        "it may have changed its password or left the organisation. " + DOWNLOAD_AGAIN
    )


class AppsBooksTokenInvalidError(AppsBooksError):
    default_message = "Apple does not accept this content token. " + DOWNLOAD_AGAIN


class AppsBooksRateLimitedError(AppsBooksError):
    """Apple still asked to wait after the retries; `retry_after` is its last wait in seconds."""

    def __init__(self, *, retry_after: float, status: int | None = 429, error_number: int = 9646):
        self.retry_after = retry_after
        super().__init__(
            f"Apple's Apps and Books service is rate limiting this location (error 9646) and "
            f"asked to wait {retry_after:.0f} seconds. Nothing was changed; try again then.",
            status=status,
            error_number=error_number,
        )


class AppsBooksUnavailableError(AppsBooksError):
    default_message = (
        "Apple's Apps and Books service could not be reached or answered with an error. "
        "Nothing was changed; try again later."
    )


class AppsBooksRequestError(AppsBooksError):
    """Any other refusal; `error_number` is Apple's."""


TOKEN_ERRORS: dict[int, type[AppsBooksError]] = {
    9621: AppsBooksTokenExpiredError,
    9625: AppsBooksTokenRevokedError,
    # 9622 is a v1 number, still answered in v2 per Fleet and Zentral; 9601 "Login required";
    # 9722 a bearer header Apple cannot read (a token with characters a header cannot carry).
    9622: AppsBooksTokenInvalidError,
    9601: AppsBooksTokenInvalidError,
    9722: AppsBooksTokenInvalidError,
}
RATE_LIMITED = 9646
MDM_INFO_LIMITS = {"id": 100, "name": 100, "metadata": 255}


@dataclass(frozen=True)
class MdmInfo:
    """Which MDM manages a location, as set through client/config."""

    id: str
    name: str
    metadata: str


@dataclass(frozen=True)
class ClientConfig:
    """Apple's `client/config` answer: the location this content token serves."""

    location_name: str
    country: str
    uid: str
    token_expires_at: datetime | None  # absent in some answers: fall back to the file's expDate
    default_platform: str
    website_url: str
    mdm_info: MdmInfo | None

    def managed_by_another_mdm(self, *, our_mdm_id: str) -> bool:
        """True when another MDM has claimed the location (Apple has no error code for it)."""
        return self.mdm_info is not None and self.mdm_info.id != our_mdm_id


@dataclass(frozen=True)
class AssetCount:
    """The location's licences, summed over every app and book in `assets`."""

    assets: int
    licences_total: int
    licences_assigned: int
    licences_available: int


def _client_config_parse(raw: dict[str, Any]) -> ClientConfig:
    mdm = raw.get("mdmInfo")
    expiry = raw.get("tokenExpirationDate")
    return ClientConfig(
        location_name=str(raw["locationName"]),
        country=str(raw.get("countryISO2ACode") or ""),
        uid=str(raw.get("uId") or ""),
        token_expires_at=datetime.fromisoformat(expiry).astimezone(UTC) if expiry else None,
        default_platform=str(raw.get("defaultPlatform") or ""),
        website_url=str(raw.get("websiteURL") or ""),
        mdm_info=MdmInfo(str(mdm["id"]), str(mdm.get("name") or ""), str(mdm.get("metadata") or ""))
        if isinstance(mdm, dict) and mdm.get("id")
        else None,
    )


class AppsBooksClient:
    """One content token's conversation with Apple's Apps and Books service v2."""

    def __init__(
        self,
        *,
        content_token: ContentToken,
        base_url: str,
        timeout: float | tuple[float, float] = (5, 30),
        user_agent: str = "mdmportal/0.1",
        max_retries: int = 3,
        max_retry_wait: float = 60.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.max_retries = max_retries
        self.max_retry_wait = max_retry_wait
        self._sleep = sleep
        self._http = requests.Session()
        self._http.headers.update(
            {
                "User-Agent": user_agent,
                "Accept": "application/json",
                "Authorization": f"Bearer {content_token.credential}",
            }
        )

    def __repr__(self) -> str:
        return f"AppsBooksClient(base_url={self.base_url!r})"

    def close(self) -> None:
        self._http.close()

    def _send(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        try:
            return self._http.request(
                method, f"{self.base_url}/{path}", timeout=self.timeout, **kwargs
            )
        except requests.RequestException as error:
            problem = (
                "did not answer in time"
                if isinstance(error, requests.Timeout)
                else ("could not be reached")
            )
            raise AppsBooksUnavailableError(
                f"Apple's Apps and Books service {problem} ({method} {path}). "
                "Nothing was changed; try again later."
            ) from error

    def _call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        """One request, retried after Apple's wait on 9646/429 and 5xx, `max_retries` times."""
        backoff = 5.0
        for attempt in range(self.max_retries + 1):
            response = self._send(method, path, **kwargs)
            body = _body(response)
            error_number = body.get("errorNumber") if isinstance(body, dict) else None
            retryable = (
                response.status_code == 429
                or response.status_code >= 500
                or (error_number == RATE_LIMITED)
            )
            if not retryable:
                break
            wait = retry_after_seconds(response.headers.get("Retry-After"))
            wait = backoff * 3**attempt if wait is None else wait
            if attempt == self.max_retries or wait > self.max_retry_wait:
                break
            self._sleep(wait)
        if isinstance(error_number, int) or response.status_code >= 400:
            raise _error(response, body)
        if not isinstance(body, dict):
            raise AppsBooksUnavailableError(
                "Apple's Apps and Books service answered with something that is not a JSON "
                "object. Nothing was changed; try again later.",
                status=response.status_code,
            )
        return body

    def _parsed(self, parse: Callable[[dict[str, Any]], Any], raw: dict[str, Any]) -> Any:
        try:
            return parse(raw)
        except (KeyError, TypeError, AttributeError, ValueError):
            raise AppsBooksUnavailableError(
                "Apple's Apps and Books service answered in an unexpected shape. "
                "Nothing was changed; try again later."
            ) from None

    # https://developer.apple.com/documentation/devicemanagement/client-config-71glv
    def client_config(self) -> ClientConfig:
        return self._parsed(_client_config_parse, self._call("GET", "client/config"))

    # https://developer.apple.com/documentation/devicemanagement/client-config-4szk1
    def client_config_claim(self, *, mdm_info: MdmInfo) -> ClientConfig:
        """Set our mdmInfo on the location, taking it from any MDM that had it."""
        for name, limit in MDM_INFO_LIMITS.items():
            value = getattr(mdm_info, name)
            if not value or len(value) > limit:
                raise ValueError(f"mdmInfo.{name} must be 1 to {limit} characters")
        body = {
            "mdmInfo": {"id": mdm_info.id, "name": mdm_info.name, "metadata": mdm_info.metadata}
        }
        answer = self._call("POST", "client/config", json=body)
        return self._parsed(_client_config_parse, answer)

    # https://developer.apple.com/documentation/devicemanagement/get-assets-4ski1
    def assets_count(self, *, max_pages: int = 1000) -> AssetCount:
        """Count the location's apps and books and their licences, page by page."""
        count = AssetCount(0, 0, 0, 0)
        page_index, version = 0, None
        for _page in range(max_pages):
            answer = self._call("GET", "assets", params={"pageIndex": page_index})
            if version is not None and answer.get("versionId") != version:
                raise AppsBooksUnavailableError(
                    "The location's licences changed while they were being counted. "
                    "Try again in a moment."
                )
            version = answer.get("versionId")
            count = self._parsed(partial(_assets_add, count), answer)
            next_index = answer.get("nextPageIndex")
            if not isinstance(next_index, int):
                return count
            page_index = next_index
        raise AppsBooksUnavailableError(f"The location has more than {max_pages} asset pages.")


def _assets_add(count: AssetCount, raw: dict[str, Any]) -> AssetCount:
    assets = raw["assets"]
    return AssetCount(
        assets=count.assets + len(assets),
        licences_total=count.licences_total + sum(int(a["totalCount"]) for a in assets),
        licences_assigned=count.licences_assigned + sum(int(a["assignedCount"]) for a in assets),
        licences_available=count.licences_available + sum(int(a["availableCount"]) for a in assets),
    )


def _body(response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _error(response: requests.Response, body: Any) -> AppsBooksError:
    """The AppsBooksError for one of Apple's refusals: its errorNumber first, then the status."""
    status = response.status_code
    fields = body if isinstance(body, dict) else {}
    number = fields.get("errorNumber")
    number = number if isinstance(number, int) else 0
    if number in TOKEN_ERRORS:
        return TOKEN_ERRORS[number](status=status, error_number=number)
    if number == RATE_LIMITED or status == 429:
        wait = retry_after_seconds(response.headers.get("Retry-After"))
        return AppsBooksRateLimitedError(
            retry_after=60.0 if wait is None else wait, status=status, error_number=number
        )
    if status >= 500 or number == 9603:
        return AppsBooksUnavailableError(
            f"Apple's Apps and Books service failed (HTTP {status}"
            f"{f', error {number}' if number else ''}). Nothing was changed; try again later.",
            status=status,
            error_number=number,
        )
    if status == 401 and not number:
        return AppsBooksTokenInvalidError(status=status)
    apple_message = str(fields.get("errorMessage") or "")[:200]
    return AppsBooksRequestError(
        f"Apple refused the request (error {number or f'HTTP {status}'}"
        f"{f': {apple_message}' if apple_message else ''}).",
        status=status,
        error_number=number,
    )
