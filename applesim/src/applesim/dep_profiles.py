"""The DEP web service's profile endpoints: define, fetch, assign (at the server's rate), remove.

Profile fields are checked as Apple documents them (define-profile); an MDM server given an
assignment limit answers THROTTLED for each device beyond it, with retry_after_seconds, as
Apple's assign-profile documentation describes.
"""

from __future__ import annotations

import math
import sqlite3
import threading
from datetime import datetime, timedelta
from typing import Any

from applesim import inventory
from applesim.dep_requests import DEPFailure, serials_requested
from applesim.store import SimStore
from applesim.web import Request, Response, json_response

PROFILE_FLAGS = (
    "allow_pairing", "is_supervised", "is_mandatory", "is_mdm_removable", "is_multi_user",
    "await_device_configured", "auto_advance_setup", "do_not_use_profile_from_backup",
    "is_return_to_service",
)  # fmt: skip
# (field, longest accepted value, Apple's error code)
PROFILE_TEXT_FIELDS = (
    ("department", 125, "DEPARTMENT_INVALID"),
    ("org_magic", 256, "MAGIC_INVALID"),
    ("language", 16, "LOCALE_INVALID"),
    ("region", 16, "LOCALE_INVALID"),
    ("support_phone_number", 50, "SUPPORT_PHONE_INVALID"),
    ("support_email_address", 250, "SUPPORT_EMAIL_INVALID"),
    ("configuration_web_url", 2000, "CONFIG_URL_INVALID"),
)


def profile_checked(body: dict[str, Any]) -> dict[str, Any]:
    name = body.get("profile_name")
    if name is None or name == "":
        raise DEPFailure(400, "CONFIG_NAME_REQUIRED")
    if not isinstance(name, str) or len(name) > 125:
        raise DEPFailure(400, "CONFIG_NAME_INVALID")
    url = body.get("url")
    if url is None or url == "":
        raise DEPFailure(400, "CONFIG_URL_REQUIRED")
    if not isinstance(url, str) or len(url) > 2000 or not url.startswith(("https://", "http://")):
        raise DEPFailure(400, "CONFIG_URL_INVALID")
    if any(flag in body and not isinstance(body[flag], bool) for flag in PROFILE_FLAGS):
        raise DEPFailure(400, "FLAGS_INVALID")
    # A profile that cannot be removed must also supervise the device.
    if body.get("is_mdm_removable") is False and not body.get("is_supervised"):
        raise DEPFailure(400, "FLAGS_INVALID")
    for field, longest, code in PROFILE_TEXT_FIELDS:
        value = body.get(field)
        if value is not None and (not isinstance(value, str) or len(value) > longest):
            raise DEPFailure(400, code)
    if "@" not in body.get("support_email_address", "@"):
        raise DEPFailure(400, "SUPPORT_EMAIL_INVALID")
    return {key: value for key, value in body.items() if key != "devices"}


class ProfileEndpoints:
    """Profiles and their assignment for every MDM server in the store."""

    def __init__(self, store: SimStore) -> None:
        self.store = store
        self._assign_lock = threading.Lock()
        self._assign_windows: dict[int, tuple[datetime, int]] = {}

    def reset(self) -> None:
        with self._assign_lock:
            self._assign_windows.clear()

    # https://developer.apple.com/documentation/devicemanagement/define-profile
    def profile_define(self, body: dict[str, Any], server: sqlite3.Row) -> Response:
        definition = profile_checked(body)
        serials = body.get("devices") or []
        if not isinstance(serials, list) or not all(isinstance(s, str) for s in serials):
            raise DEPFailure(400, "MALFORMED_REQUEST_BODY")
        profile_uuid = inventory.profile_create(self.store, server["server_id"], definition)
        results, _retry_after = self._assign(server, profile_uuid, list(dict.fromkeys(serials)))
        return json_response({"profile_uuid": profile_uuid, "devices": results})

    # https://developer.apple.com/documentation/devicemanagement/fetch-profile
    def profile_get(self, request: Request, server: sqlite3.Row) -> Response:
        profile_uuid = request.query.get("profile_uuid")
        if not profile_uuid:
            raise DEPFailure(400, "PROFILE_UUID_REQUIRED")
        profile = inventory.profile_get(self.store, server["server_id"], profile_uuid)
        if profile is None:
            raise DEPFailure(404, "NOT_FOUND")
        return json_response(profile)

    # https://developer.apple.com/documentation/devicemanagement/assign-profile
    def profile_assign(self, body: dict[str, Any], server: sqlite3.Row) -> Response:
        profile_uuid = body.get("profile_uuid")
        if not profile_uuid or not isinstance(profile_uuid, str):
            raise DEPFailure(400, "PROFILE_UUID_REQUIRED")
        serials = serials_requested(body)
        if inventory.profile_get(self.store, server["server_id"], profile_uuid) is None:
            raise DEPFailure(404, "NOT_FOUND")
        results, retry_after = self._assign(server, profile_uuid, serials)
        payload: dict[str, Any] = {"profile_uuid": profile_uuid, "devices": results}
        if retry_after:
            payload["retry_after_seconds"] = retry_after
        return json_response(payload)

    def _assign(
        self, server: sqlite3.Row, profile_uuid: str, serials: list[str]
    ) -> tuple[dict[str, str], int]:
        owned = inventory.devices_of_server(self.store, server["server_id"], serials)
        granted, retry_after = self._assign_quota(server, sum(s in owned for s in serials))
        results: dict[str, str] = {}
        assigned: list[str] = []
        for serial in serials:
            if serial not in owned:
                results[serial] = "NOT_ACCESSIBLE"
            elif len(assigned) < granted:
                results[serial] = "SUCCESS"
                assigned.append(serial)
            else:
                results[serial] = "THROTTLED"
        if assigned:
            inventory.profile_set(self.store, server["server_id"], assigned, profile_uuid)
        return results, retry_after

    def _assign_quota(self, server: sqlite3.Row, wanted: int) -> tuple[int, int]:
        """How many assignments the server's rate allows now, and seconds until more are."""
        if server["assign_limit"] is None:
            return wanted, 0
        window, now = timedelta(seconds=server["assign_window"]), self.store.now()
        with self._assign_lock:
            started, used = self._assign_windows.get(server["server_id"], (now, 0))
            if now - started >= window:
                started, used = now, 0
            granted = max(0, min(wanted, server["assign_limit"] - used))
            self._assign_windows[server["server_id"]] = (started, used + granted)
        if granted == wanted:
            return granted, 0
        return granted, max(1, math.ceil((started + window - now).total_seconds()))

    # https://developer.apple.com/documentation/devicemanagement/clear-device-profile
    def profile_remove(self, body: dict[str, Any], server: sqlite3.Row) -> Response:
        serials = serials_requested(body)
        profile_uuid = body.get("profile_uuid")
        owned = inventory.devices_of_server(self.store, server["server_id"], serials)
        results, removed = {}, []
        for serial in serials:
            if serial not in owned:
                results[serial] = "NOT_ACCESSIBLE"
            elif profile_uuid and owned[serial]["profile_uuid"] != profile_uuid:
                results[serial] = "FAILED"
            else:
                results[serial] = "SUCCESS"
                removed.append(serial)
        if removed:
            inventory.profile_set(self.store, server["server_id"], removed, "")
        return json_response({"devices": results})
