"""The DEP web service (mdmenrollment.apple.com), faithful to docs/apple-dep.md sections 3 to 7.

Every request needs a User-Agent and an X-Server-Protocol-Version; every endpoint but /session
needs a live X-ADM-Auth-Session. Errors are Apple's plain-text codes (quoted like depsim's when
the `quoted_errors` setting is on). Fault scripts answer before any of these checks.

Where Apple's live service answers differently from its documentation, this answers as Apple
does (docs/apple-answers.md): a server token reset by a newer download in ABM gets 403
"token_rejected" (quoted; the `reset_token_code` setting makes it "signature_invalid") on /session
and on API calls, and OAuth keys that are not one token's get 400 oauth_problem_adviceBad Request.
"""

from __future__ import annotations

import hashlib
import sqlite3
from datetime import datetime, timedelta
from typing import Any

from applesim import inventory
from applesim.auth import AuthSession, AuthSessions, ServerTokenReset
from applesim.cursors import FETCH, SYNC, Cursor, CursorInvalid, cursor_decode, cursor_encode
from applesim.database import timestamp
from applesim.dep_profiles import ProfileEndpoints
from applesim.dep_requests import (
    PAGE_LIMIT_DEFAULT,
    PAGE_LIMIT_MAXIMUM,
    DEPFailure,
    page_limit,
    request_body,
    serials_requested,
)
from applesim.faults import FaultScripts
from applesim.store import SimStore
from applesim.web import Request, Response, json_response, text_response

ROUTES = {
    ("GET", "/session"): "session",
    ("GET", "/account"): "account",
    ("POST", "/server/devices"): "server_devices",
    ("POST", "/devices/sync"): "devices_sync",
    ("POST", "/devices"): "devices",
    ("POST", "/profile"): "profile_define",
    ("GET", "/profile"): "profile_get",
    ("PUT", "/profile/devices"): "profile_assign",
    ("POST", "/profile/devices"): "profile_assign",
    ("DELETE", "/profile/devices"): "profile_remove",
}
PATHS = frozenset(path for _method, path in ROUTES)
ACCOUNT_URLS = (
    {"uri": "/session", "http_method": ["GET"]},
    {"uri": "/account", "http_method": ["GET"]},
    {"uri": "/server/devices", "http_method": ["POST"],
     "limit": {"default": PAGE_LIMIT_DEFAULT, "maximum": PAGE_LIMIT_MAXIMUM}},
    {"uri": "/devices/sync", "http_method": ["POST"],
     "limit": {"default": PAGE_LIMIT_DEFAULT, "maximum": PAGE_LIMIT_MAXIMUM}},
    {"uri": "/devices", "http_method": ["POST"]},
    {"uri": "/profile", "http_method": ["GET", "POST"]},
    {"uri": "/profile/devices", "http_method": ["DELETE", "POST", "PUT"]},
)  # fmt: skip
CURSOR_LIFETIME = timedelta(days=7)
SERVER_QUERY = (
    "SELECT mdm_server.id AS server_id, server_name, server_uuid, admin_id, assign_limit,"
    " assign_window, organisation.org_id, organisation.name AS org_name, organisation.email"
    " AS org_email, organisation.phone AS org_phone, organisation.address AS org_address,"
    " org_type, org_version, terms_accepted FROM mdm_server"
    " JOIN organisation ON organisation.id = mdm_server.organisation_id WHERE mdm_server.id = ?"
)


class DEPService:
    """Answers the DEP web service endpoints for every MDM server in the store."""

    def __init__(self, store: SimStore, faults: FaultScripts) -> None:
        self.store = store
        self.faults = faults
        self.sessions = AuthSessions(store)
        self.profiles = ProfileEndpoints(store)

    def handle(self, request: Request) -> Response:
        endpoint = ROUTES.get((request.method, request.path))
        if endpoint is None:
            if request.path in PATHS:
                return self._error(405, "METHOD_NOT_ALLOWED")
            return self._error(404, "NOT_FOUND")
        entry = self.faults.take(endpoint)
        scripted = self.faults.answer(entry)
        if scripted is not None:
            return scripted
        quirk = entry.action if entry is not None else None
        rotated = None
        try:
            if not request.header("user-agent"):
                raise DEPFailure(400, "USER_AGENT_MISSING")
            version = self._protocol_version(request)
            if endpoint == "session":
                return self._session(request)
            try:
                session, rotated = self.sessions.use(request.header("x-adm-auth-session"))
            except ServerTokenReset:
                return self._token_reset()
            if session is None:
                raise DEPFailure(401, "UNAUTHORIZED")
            response = self._authenticated(endpoint, request, session, version, quirk)
        except DEPFailure as failure:
            response = self._error(failure.status, failure.code)
        if rotated:
            response.headers["X-ADM-Auth-Session"] = rotated
        return response

    def reset(self) -> None:
        self.sessions.clear()
        self.profiles.reset()

    def _error(self, status: int, code: str) -> Response:
        quoted = self.store.setting("quoted_errors") == "1"
        return text_response(status, f'"{code}"' if quoted else code)

    def _token_reset(self) -> Response:
        """Apple's answer to a reset token: 403 and its code in quotes (fleetdm/fleet#43916)."""
        code = self.store.setting("reset_token_code") or "token_rejected"
        return text_response(403, f'"{code}"')

    def _protocol_version(self, request: Request) -> int:
        try:
            return int(request.header("x-server-protocol-version") or "")
        except ValueError as error:
            raise DEPFailure(400, "X_SERVER_PROTOCOL_VERSION_INVALID") from error

    def _session(self, request: Request) -> Response:
        uri = f"http://{request.host}{request.path}"
        server_token_id, refusal = self.sessions.server_token_verified(uri, request.headers)
        if refusal == "reset":
            return self._token_reset()
        if refusal == "mismatch":
            # Apple's OAuth layer, not the DEP service, answers: bare text, never quoted.
            return text_response(400, "oauth_problem_adviceBad Request")
        if server_token_id is None:
            raise DEPFailure(401, "UNAUTHORIZED")
        server_id = self.store.query(
            "SELECT mdm_server_id FROM server_token WHERE id = ?", (server_token_id,)
        )[0][0]
        server = self._server(server_id)
        if not server["terms_accepted"]:
            raise DEPFailure(403, "T_C_NOT_SIGNED")
        return json_response(
            {"auth_session_token": self.sessions.open(server_token_id, server["server_id"])}
        )

    def _server(self, server_id: int) -> sqlite3.Row:
        server = self.store.query_one(SERVER_QUERY, (server_id,))
        if server is None:
            raise DEPFailure(401, "UNAUTHORIZED")
        return server

    def _authenticated(
        self, endpoint: str, request: Request, session: AuthSession, version: int, quirk: str | None
    ) -> Response:
        server = self._server(session.mdm_server_id)
        if not server["terms_accepted"]:
            raise DEPFailure(403, "T_C_NOT_SIGNED")
        if endpoint == "account":
            return self._account(server, version)
        if endpoint == "profile_get":
            return self.profiles.profile_get(request, server)
        if endpoint == "server_devices":
            return self._server_devices(request_body(request), server, version, quirk)
        if endpoint == "devices_sync":
            return self._devices_sync(request_body(request), server, version, quirk)
        if endpoint == "devices":
            return self._devices(request_body(request), server, version)
        handler = getattr(self.profiles, endpoint)
        return handler(request_body(request), server)

    # https://developer.apple.com/documentation/devicemanagement/get_account_detail
    def _account(self, server: sqlite3.Row, version: int) -> Response:
        account: dict[str, Any] = {
            "server_name": server["server_name"],
            "server_uuid": server["server_uuid"],
            "admin_id": server["admin_id"],
            "facilitator_id": server["admin_id"],
            "urls": list(ACCOUNT_URLS),
        }
        if version >= 3:
            account |= {
                "org_name": server["org_name"],
                "org_email": server["org_email"],
                "org_phone": server["org_phone"],
                "org_address": server["org_address"],
                "org_id": server["org_id"],
                "org_id_hash": hashlib.sha256(server["org_id"].encode()).hexdigest()[:40],
                "org_type": server["org_type"],
                "org_version": server["org_version"],
            }
        return json_response(account)

    def _device(self, row: sqlite3.Row, version: int) -> dict[str, Any]:
        device = inventory.device_json(row)
        # iPadOS exists from protocol version 7; older clients see iOS.
        if version < 7 and device["os"] == "iPadOS":
            device["os"] = "iOS"
        if version < 8:
            device.pop("mdm_migration_deadline", None)
        return device

    def _cursor(self, text: object, server: sqlite3.Row) -> Cursor:
        if not isinstance(text, str):
            raise DEPFailure(400, "INVALID_CURSOR")
        try:
            return cursor_decode(text, self.store.cursor_secret(), server_id=server["server_id"])
        except CursorInvalid as error:
            raise DEPFailure(400, "INVALID_CURSOR") from error

    def _page(
        self,
        devices: list[dict[str, Any]],
        cursor: Cursor,
        more: bool,
        now: datetime,
        echoed: str | None = None,
    ) -> Response:
        """One page; `echoed` is the request's cursor when the echo_cursor fault answers it
        again, with more to follow, as Apple sometimes does (micromdm/micromdm PR #1016)."""
        if echoed is not None:
            return json_response(
                {"devices": devices, "cursor": echoed, "more_to_follow": True,
                 "fetched_until": timestamp(now)}
            )  # fmt: skip
        return json_response(
            {
                "devices": devices,
                "cursor": cursor_encode(cursor, self.store.cursor_secret()),
                "more_to_follow": more,
                "fetched_until": timestamp(now),
            }
        )

    # https://developer.apple.com/documentation/devicemanagement/fetch-devices
    def _server_devices(
        self, body: dict[str, Any], server: sqlite3.Row, version: int, quirk: str | None
    ) -> Response:
        limit, now, server_id = page_limit(body), self.store.now(), server["server_id"]
        if body.get("cursor"):
            cursor = self._cursor(body["cursor"], server)
            if cursor.kind == SYNC:
                raise DEPFailure(400, "EXHAUSTED_CURSOR")
        else:
            cursor = Cursor(server_id, FETCH, 0, inventory.event_seq_latest(self.store), now)
        rows = inventory.devices_page(self.store, server_id, cursor.device_id, limit + 1)
        more = len(rows) > limit
        rows = rows[:limit]
        if more:
            following = Cursor(server_id, FETCH, rows[-1]["id"], cursor.event_seq, now)
        else:
            following = Cursor(server_id, SYNC, 0, cursor.event_seq, now)
        devices = [self._device(row, version) for row in rows]
        echoed = str(body.get("cursor") or "") if quirk == "echo_cursor" else None
        return self._page(devices, following, more, now, echoed)

    # https://developer.apple.com/documentation/devicemanagement/sync-devices
    def _devices_sync(
        self, body: dict[str, Any], server: sqlite3.Row, version: int, quirk: str | None
    ) -> Response:
        if not body.get("cursor"):
            raise DEPFailure(400, "CURSOR_REQUIRED")
        cursor = self._cursor(body["cursor"], server)
        limit, now = page_limit(body), self.store.now()
        if now - cursor.issued_at > CURSOR_LIFETIME:
            raise DEPFailure(400, "EXPIRED_CURSOR")
        rows = inventory.device_events(self.store, server["server_id"], cursor.event_seq, limit + 1)
        more = len(rows) > limit
        rows = rows[:limit]
        devices = []
        for row in rows:
            event = {"op_type": row["op_type"], "op_date": row["op_date"]}
            if row["op_type"] == "deleted" or row["id"] is None:
                # What Apple sends of a released device: the serial, the event, and whether a
                # replacement took its place (petarov/apple-mdm-clients' fixtures).
                deleted = {"serial_number": row["event_serial"], **event}
                if row["released_by_replacement"]:
                    deleted["released_by_replacement"] = True
                devices.append(deleted)
            elif quirk == "hide_added" and row["op_type"] == "added":
                # Assigned devices that never arrive until the cursor is reset
                # (fleetdm/fleet#49837).
                continue
            else:
                devices.append({**self._device(row, version), **event})
        last_seq = rows[-1]["seq"] if rows else cursor.event_seq
        following = Cursor(server["server_id"], SYNC, 0, last_seq, now)
        echoed = str(body["cursor"]) if quirk == "echo_cursor" else None
        return self._page(devices, following, more, now, echoed)

    # https://developer.apple.com/documentation/devicemanagement/device-details
    def _devices(self, body: dict[str, Any], server: sqlite3.Row, version: int) -> Response:
        serials = serials_requested(body)
        owned = inventory.devices_of_server(self.store, server["server_id"], serials)
        details = {
            serial: {**self._device(owned[serial], version), "response_status": "SUCCESS"}
            if serial in owned
            else {"response_status": "NOT_ACCESSIBLE"}
            for serial in serials
        }
        return json_response({"devices": details})
