"""Fault scripts, after depsim's failure configuration: canned answers per endpoint.

Endpoints: the DEP web service's `session`, `account`, `server_devices`, `devices_sync`,
`devices`, `profile_define`, `profile_get`, `profile_assign`, `profile_remove`; the Apps and
Books service's `vpp_client_config` (GET client/config), `vpp_client_config_update` (POST) and
`vpp_assets` (see apps_books.py), whose errors are JSON, e.g. Apple's rate limit:

    {"status": 429, "body": "{\"errorNumber\": 9646}", "headers": {"Retry-After": "2"},
     "content_type": "application/json;charset=UTF8"}

A script is a list of entries consumed in order; each entry answers `count` requests (default 1)
before the next one takes over, and normal behaviour resumes when the script runs out:

    {"count": 2, "status": 403, "body": "T_C_NOT_SIGNED", "headers": {"Retry-After": "2"}}
    {"status": 200, "body": "{...}", "content_type": "application/json;charset=UTF8"}
    {"action": "timeout", "seconds": 5}   sleep, then answer normally (or with "status")
    {"action": "drop"}                    close the connection without a response
    {"action": "malformed"}               200 with a body that is not JSON
    {"action": "pass"}                    answer normally (to fault a later request)

Faults that answer as Apple's live service does where it departs from its documentation
(docs/apple-answers.md names the public record of each):

    {"action": "echo_cursor"}             server_devices, devices_sync: the page for the
                                          request's cursor, but with that same cursor back and
                                          more_to_follow true (micromdm/micromdm PR #1016,
                                          micromdm/nanodep#73)
    {"action": "hide_added"}              devices_sync: newly assigned devices are left out,
                                          though the cursor moves past them; only a full fetch
                                          finds them (fleetdm/fleet#49837)
    {"status": 403, "body": "\"signature_invalid\""}
                                          session (or any endpoint): a reset token as Apple
                                          answers it; applesim answers "token_rejected" by itself
                                          for a token a newer download reset (fleetdm/fleet#43916)
    {"status": 400, "body": "oauth_problem_adviceBad Request"}
                                          session: OAuth keys that do not match
                                          (fleetdm/fleet#11416); applesim answers this by itself
                                          for a known consumer key with the wrong secrets
    {"status": 403, "body": "token_expiredForbidden"}
                                          session: expired credentials, bare text
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

from applesim.database import SimError
from applesim.web import APPLE_TEXT, Response

ENDPOINTS = (
    "session",
    "account",
    "server_devices",
    "devices_sync",
    "devices",
    "profile_define",
    "profile_get",
    "profile_assign",
    "profile_remove",
    "vpp_client_config",
    "vpp_client_config_update",
    "vpp_assets",
)
ACTIONS = ("timeout", "drop", "malformed", "pass", "echo_cursor", "hide_added")
# Actions the DEP service carries out itself while answering the request.
QUIRKS = frozenset({"echo_cursor", "hide_added"})


@dataclass
class FaultEntry:
    count: int
    status: int | None = None
    body: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    action: str | None = None
    seconds: float = 0.0
    content_type: str = APPLE_TEXT


def fault_entry_parse(raw: dict[str, Any]) -> FaultEntry:
    action = raw.get("action")
    if action is not None and action not in ACTIONS:
        raise SimError(400, "FAULT_INVALID", f"Unknown action {action!r}; use one of {ACTIONS}.")
    if action is None and not isinstance(raw.get("status"), int):
        raise SimError(400, "FAULT_INVALID", "A fault needs a status or an action.")
    count = raw.get("count", 1)
    if not isinstance(count, int) or count < 1:
        raise SimError(400, "FAULT_INVALID", "A fault's count must be a positive integer.")
    return FaultEntry(
        count=count,
        status=raw.get("status"),
        body=str(raw.get("body", "")),
        headers={str(name): str(value) for name, value in raw.get("headers", {}).items()},
        action=action,
        seconds=float(raw.get("seconds", 0)),
        content_type=str(raw.get("content_type") or APPLE_TEXT),
    )


class FaultScripts:
    """The scripts per endpoint, shared by the request threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._scripts: dict[str, list[FaultEntry]] = {}

    def set(self, endpoint: str, script: list[dict[str, Any]]) -> None:
        if endpoint not in ENDPOINTS:
            raise SimError(400, "ENDPOINT_INVALID", f"Unknown endpoint {endpoint!r}: {ENDPOINTS}.")
        entries = [fault_entry_parse(raw) for raw in script]
        with self._lock:
            self._scripts[endpoint] = entries

    def clear(self) -> None:
        with self._lock:
            self._scripts.clear()

    def pending(self) -> dict[str, int]:
        with self._lock:
            return {
                endpoint: sum(entry.count for entry in entries)
                for endpoint, entries in self._scripts.items()
                if entries
            }

    def take(self, endpoint: str) -> FaultEntry | None:
        """The script entry that answers this request, if any, counted as used."""
        with self._lock:
            entries = self._scripts.get(endpoint)
            if not entries:
                return None
            entry = entries[0]
            entry.count -= 1
            if entry.count == 0:
                entries.pop(0)
            return entry

    def answer(self, entry: FaultEntry | None) -> Response | None:
        """The scripted answer for a taken entry, or None to behave normally (or by its quirk).

        A timeout sleeps here and then answers with its status, or normally if it has none.
        """
        if entry is None or entry.action == "pass" or entry.action in QUIRKS:
            return None
        if entry.action == "timeout":
            time.sleep(entry.seconds)
        elif entry.action == "drop":
            return Response(0, drop=True)
        elif entry.action == "malformed":
            return Response(
                200, b'{"devices": [{"serial_number": ', "application/json;charset=UTF8"
            )
        if entry.status is None:
            return None
        return Response(entry.status, entry.body.encode(), entry.content_type, dict(entry.headers))
