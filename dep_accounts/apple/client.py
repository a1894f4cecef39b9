"""Apple's DEP web service (Automated Device Enrollment), as the portal calls it.

No Django here: a DEPClient is built from a server token's four OAuth values and a base URL
(settings.DEP_API_URL: Apple in production, applesim in tests and demos). It signs /session with
OAuth 1.0a HMAC-SHA1, follows the X-ADM-Auth-Session Apple rotates, retries what is worth
retrying, and turns Apple's answers into frozen dataclasses and its refusals into DEPError
subclasses (dep_errors.py) whose `message` tells an admin what to do.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from types import TracebackType
from typing import Any, Self

import requests
from django.views.decorators.debug import sensitive_variables
from requests.adapters import HTTPAdapter
from requests_oauthlib import OAuth1
from urllib3.connectionpool import ConnectionPool
from urllib3.exceptions import InvalidHeader, MaxRetryError, ResponseError
from urllib3.exceptions import TimeoutError as TransportTimeoutError
from urllib3.response import BaseHTTPResponse
from urllib3.util.retry import Retry

from dep_accounts.apple.dep_errors import AppleUnavailableError, dep_error
from dep_accounts.apple.schema import (
    Account,
    DeviceDetail,
    DevicePage,
    ProfileAssignment,
    ProfileDefined,
    account_parse,
    device_parse,
    page_parse,
    profile_assignment_parse,
    profile_defined_parse,
    results_parse,
    text_parse,
)

# 10: the portal reads mdm_migration_deadline (v8), THROTTLED (v9) and retry_after_seconds (v10).
PROTOCOL_VERSION = "10"
CONTENT_TYPE = "application/json;charset=UTF8"
SESSION_HEADER = "X-ADM-Auth-Session"
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


class _AppleRetry(Retry):
    """urllib3's retries, except that a Retry-After beyond `wait_limit` ends them at once.

    The caller then gets the 429/503 itself and raises ThrottledError instead of sleeping.
    """

    def __init__(self, *args: Any, wait_limit: float = 30.0, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.wait_limit = wait_limit

    def new(self, **kw: Any) -> Self:
        kw.setdefault("wait_limit", self.wait_limit)
        return super().new(**kw)

    def increment(
        self,
        method: str | None = None,
        url: str | None = None,
        response: BaseHTTPResponse | None = None,
        error: Exception | None = None,
        _pool: ConnectionPool | None = None,
        _stacktrace: TracebackType | None = None,
    ) -> Self:
        if response is not None:
            try:
                wait = self.get_retry_after(response)
            except InvalidHeader:
                wait = None
            if wait is not None and wait > self.wait_limit:
                # urllib3 itself raises MaxRetryError without a pool (its own ignore, retry.py).
                raise MaxRetryError(_pool, url or "", ResponseError("wait too long"))  # type: ignore[arg-type]
        return super().increment(method, url, response, error, _pool, _stacktrace)


class DEPClient:
    """One MDM server's conversation with Apple's DEP web service."""

    @sensitive_variables("consumer_key", "consumer_secret", "access_token", "access_secret")
    def __init__(
        self,
        *,
        consumer_key: str,
        consumer_secret: str,
        access_token: str,
        access_secret: str,
        base_url: str,
        timeout: float | tuple[float, float] = (5, 30),
        user_agent: str = "mdmportal/0.1",
        session_token: str | None = None,
        max_retry_wait: float = 30.0,
        retry_backoff: float = 0.5,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        # Apple's current X-ADM-Auth-Session; callers may keep it to save a /session call.
        self.session_token = session_token
        self._oauth = OAuth1(
            consumer_key,
            client_secret=consumer_secret,
            resource_owner_key=access_token,
            resource_owner_secret=access_secret,
            signature_method="HMAC-SHA1",
        )
        self._http = requests.Session()
        self._http.headers.update(
            {
                "User-Agent": user_agent,
                "X-Server-Protocol-Version": PROTOCOL_VERSION,
                "Content-Type": CONTENT_TYPE,
                "Accept": "application/json",
            }
        )
        retry = _AppleRetry(
            total=2,
            other=0,
            allowed_methods=None,
            status_forcelist=RETRY_STATUSES,
            backoff_factor=retry_backoff,
            raise_on_status=False,
            wait_limit=max_retry_wait,
        )
        self._http.mount(self.base_url + "/", HTTPAdapter(max_retries=retry))
        # A signed /session request is never replayed after it may have reached Apple: its
        # nonce would be spent, and Apple answers a reused nonce with 401.
        self._http.mount(self.base_url + "/session", HTTPAdapter(max_retries=retry.new(read=0)))

    def __repr__(self) -> str:
        return f"DEPClient(base_url={self.base_url!r})"

    def close(self) -> None:
        self._http.close()

    def _send(
        self, method: str, path: str, *, body: Any = None, params: dict[str, str] | None = None
    ) -> requests.Response:
        signing = path == "/session"
        headers = {} if signing or not self.session_token else {SESSION_HEADER: self.session_token}
        try:
            response = self._http.request(
                method,
                self.base_url + path,
                data=None if body is None else json.dumps(body),
                params=params,
                headers=headers,
                auth=self._oauth if signing else None,
                timeout=self.timeout,
            )
        except requests.RequestException as error:
            # Once retries run out, requests reports a timeout as a ConnectionError.
            reason = getattr(error.args[0] if error.args else None, "reason", None)
            if isinstance(error, requests.Timeout) or isinstance(reason, TransportTimeoutError):
                problem = f"did not answer {method} {path} in time"
            else:
                problem = f"could not be reached for {method} {path}"
            raise AppleUnavailableError(
                f"Apple's DEP web service {problem}. "
                "Nothing was changed; it will be tried again later."
            ) from error
        rotated = response.headers.get(SESSION_HEADER)
        if rotated:
            self.session_token = rotated
        return response

    def _json(self, response: requests.Response) -> Any:
        try:
            return response.json()
        # Nesting deeper than Python's recursion limit is not Apple's JSON (a crafted answer).
        except (ValueError, RecursionError):
            raise AppleUnavailableError(
                "Apple's DEP web service answered with something that is not JSON. "
                "Nothing was changed; it will be tried again later.",
                status=response.status_code,
            ) from None

    def _authenticate(self) -> None:
        self.session_token = None
        response = self._send("GET", "/session")
        if response.status_code != 200:
            raise dep_error(response, on_session=True)
        session = self._json(response)
        token = session.get("auth_session_token") if isinstance(session, dict) else None
        if not isinstance(token, str) or not token:
            raise AppleUnavailableError("Apple's /session answer had no auth_session_token.")
        self.session_token = token

    def _call(
        self, method: str, path: str, *, body: Any = None, params: dict[str, str] | None = None
    ) -> Any:
        """Send one request, opening a session first and once more if Apple ends it."""
        if self.session_token is None:
            self._authenticate()
        response = self._send(method, path, body=body, params=params)
        if response.status_code == 401 or (
            response.status_code == 403 and "FORBIDDEN" in response.text
        ):
            self._authenticate()
            response = self._send(method, path, body=body, params=params)
        if response.status_code >= 400:
            raise dep_error(response, on_session=False)
        return self._json(response)

    def _parsed(self, parse: Any, raw: Any) -> Any:
        try:
            return parse(raw)
        except (KeyError, TypeError, AttributeError, ValueError):
            raise AppleUnavailableError(
                "Apple's DEP web service answered in an unexpected shape. "
                "Nothing was changed; it will be tried again later."
            ) from None

    # https://developer.apple.com/documentation/devicemanagement/get_account_detail
    def account(self) -> Account:
        return self._parsed(account_parse, self._call("GET", "/account"))

    # https://developer.apple.com/documentation/devicemanagement/fetch-devices
    def devices_fetch(self, *, cursor: str | None = None, limit: int = 1000) -> DevicePage:
        body: dict[str, Any] = {"limit": limit}
        if cursor:
            body["cursor"] = cursor
        return self._parsed(page_parse, self._call("POST", "/server/devices", body=body))

    # https://developer.apple.com/documentation/devicemanagement/sync-devices
    def devices_sync(self, *, cursor: str, limit: int = 1000) -> DevicePage:
        body = {"cursor": cursor, "limit": limit}
        return self._parsed(page_parse, self._call("POST", "/devices/sync", body=body))

    # https://developer.apple.com/documentation/devicemanagement/device-details
    def device_details(self, serials: Iterable[str]) -> dict[str, DeviceDetail]:
        answer = self._call("POST", "/devices", body={"devices": list(serials)})

        def parse(raw: dict[str, Any]) -> dict[str, DeviceDetail]:
            details = {}
            for serial, detail in raw["devices"].items():
                status = text_parse(detail.get("response_status"))
                device = (
                    device_parse({"serial_number": serial, **detail})
                    if status == "SUCCESS"
                    else None
                )
                details[serial] = DeviceDetail(serial, status, device)
            return details

        return self._parsed(parse, answer)

    # https://developer.apple.com/documentation/devicemanagement/define-profile
    def profile_define(self, profile: dict[str, Any]) -> ProfileDefined:
        answer = self._call("POST", "/profile", body=profile)
        return self._parsed(profile_defined_parse, answer)

    # https://developer.apple.com/documentation/devicemanagement/fetch-profile
    def profile_get(self, profile_uuid: str) -> dict[str, Any]:
        answer = self._call("GET", "/profile", params={"profile_uuid": profile_uuid})
        if not isinstance(answer, dict):
            raise AppleUnavailableError("Apple's DEP web service answered in an unexpected shape.")
        return answer

    # https://developer.apple.com/documentation/devicemanagement/assign-profile
    def profile_assign(self, *, profile_uuid: str, serials: Iterable[str]) -> ProfileAssignment:
        # PUT, as nanodep and depsim use; Apple's documentation now also allows POST.
        body = {"profile_uuid": profile_uuid, "devices": list(serials)}
        answer = self._call("PUT", "/profile/devices", body=body)
        return self._parsed(
            lambda raw: profile_assignment_parse(raw, profile_uuid=profile_uuid), answer
        )

    # https://developer.apple.com/documentation/devicemanagement/clear-device-profile
    def profile_remove(
        self, *, serials: Iterable[str], profile_uuid: str | None = None
    ) -> dict[str, str]:
        """Clear the profile of these devices; serial -> SUCCESS, NOT_ACCESSIBLE or FAILED."""
        body: dict[str, Any] = {"devices": list(serials)}
        if profile_uuid:
            body["profile_uuid"] = profile_uuid
        answer = self._call("DELETE", "/profile/devices", body=body)
        return self._parsed(lambda raw: results_parse(raw["devices"]), answer)
