"""Apple's Apps and Books for Organizations service v2 (vpp.itunes.apple.com/mdm/v2), simulated.

Served under /mdm/v2/: `service/config` (no token), `client/config` GET and POST, and `assets`.
Every other endpoint needs `Authorization: Bearer <the whole .vpptoken text>`. Answers and error
bodies are Apple's JSON: `{"errorNumber": n, "errorMessage": text}` with the statuses of Apple's
"Handling Error Responses" (9621 expired and 9625 revoked at 401, 9646 rate limited at 429,
9722 a malformed Authorization header at 401, 9726 a wrong method at 405, 9727 a wrong
Content-Type at 415, 9723 to 9725 bad mdmInfo at 400). An unknown token answers 200 with 9622,
as Fleet's client reports Apple doing (fleetdm/fleet server/mdm/apple/vpp/api.go).

Locations belong to ABM organisations. Downloading a content token for a location (ABM's
Apps and Books > Download, or POST /_sim/vpp/locations/<uid>/token) does NOT revoke the
location's earlier tokens: no public source says Apple does. Revoking is a fault
(POST /_sim/vpp/tokens/revoke). Fault endpoints: `vpp_client_config`, `vpp_client_config_update`,
`vpp_assets` (see faults.py); SimControl.vpp_rate_limit scripts Apple's 9646 at HTTP 429 with
a Retry-After.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import sqlite3
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from applesim.database import SimError, timestamp
from applesim.faults import FaultScripts
from applesim.store import SimStore
from applesim.web import Request, Response, json_response

SCHEMA = """
CREATE TABLE IF NOT EXISTS vpp_location (
    id INTEGER PRIMARY KEY, organisation_id INTEGER NOT NULL, uid TEXT NOT NULL UNIQUE,
    location_name TEXT NOT NULL, country TEXT NOT NULL, mdm_id TEXT, mdm_name TEXT,
    mdm_metadata TEXT, version INTEGER NOT NULL DEFAULT 1
);
CREATE TABLE IF NOT EXISTS vpp_token (
    id INTEGER PRIMARY KEY, location_id INTEGER NOT NULL, credential TEXT NOT NULL UNIQUE,
    issued_at TEXT NOT NULL, expires_at TEXT NOT NULL, revoked INTEGER NOT NULL DEFAULT 0,
    downloaded_by TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS vpp_asset (
    id INTEGER PRIMARY KEY, location_id INTEGER NOT NULL, adam_id TEXT NOT NULL,
    total_count INTEGER NOT NULL, assigned_count INTEGER NOT NULL
);
"""
PREFIX = "/mdm/v2/"
ROUTES = {
    ("GET", "client/config"): "vpp_client_config",
    ("POST", "client/config"): "vpp_client_config_update",
    ("GET", "assets"): "vpp_assets",
}
ASSETS_PAGE_SIZE = 100
# Apple's v2 example writes expDate with a +0000 offset.
EXP_DATE_FORMAT = "%Y-%m-%dT%H:%M:%S+0000"
ERRORS = {
    9602: (400, "Invalid argument."),
    9621: (401, "The token has expired. You need to generate a new token online using your "
                "organization\u2019s account at either school.apple.com or business.apple.com."),
    9622: (200, "Invalid authentication token"),
    9625: (401, "The server has revoked the cToken."),
    9646: (429, "There are too many requests for the current Organization and the request has "
                "been rejected, either due to high server volume or an MDM issue. Use an "
                "incremental/exponential backoff strategy to retry the request until successful."),
    9650: (400, "The provided page index must be greater than 0, and less than the total number "
                "of pages."),
    9722: (401, "This request contains an invalid authorization header. Change the request to "
                "send an authorization header that matches the format 'Bearer {cToken}'."),
    9723: (400, "You must provide an MDM name, ID, and metadata when setting the MDM information."),
    9724: (400, "The MDM ID exceeds the maximum length. The maximum length is 100 characters."),
    9725: (400, "The MDM name exceeds the maximum length. The maximum length is 100 characters."),
    9726: (405, "This request contains an unsupported HTTP method for the requested endpoint."),
    9727: (415, "This request contains an unsupported Content-Type for the requested endpoint."),
}  # fmt: skip


@dataclass(frozen=True)
class IssuedContentToken:
    """What one press of Apps and Books > Download produced."""

    filename: str
    content: bytes  # the .vpptoken file: base64 of Apple's JSON


class AppleError(Exception):
    def __init__(self, number: int) -> None:
        super().__init__(number)
        self.number = number


def apple_error(number: int) -> Response:
    status, message = ERRORS[number]
    return json_response({"errorNumber": number, "errorMessage": message}, status)


class AppsBooks:
    """The locations, their content tokens and licences, and the service that answers for them."""

    def __init__(self, store: SimStore, faults: FaultScripts) -> None:
        self.store = store
        self.faults = faults
        with store.lock:
            store.connection.executescript(SCHEMA)

    # The state, as ABM and the control API change it.

    def location_create(self, *, org_id: str, location_name: str, country: str = "US") -> str:
        """Add a location (an ABM organisational unit with its own content token); its uid."""
        organisation = self.store.organisation(org_id)
        location_name = location_name.strip()
        if not location_name or len(location_name) > 100:
            raise SimError(400, "LOCATION_NAME_INVALID", "A location needs a name (100 at most).")
        if not re.fullmatch(r"[A-Z]{2}", country):
            raise SimError(400, "COUNTRY_INVALID", "The country is an ISO 3166 alpha-2 code.")
        uid = str(2_000_000_000_000_000 + secrets.randbelow(10**15))
        with self.store.transaction() as connection:
            connection.execute(
                "INSERT INTO vpp_location (organisation_id, uid, location_name, country)"
                " VALUES (?, ?, ?, ?)",
                (organisation["id"], uid, location_name, country),
            )
        return uid

    def location(self, uid: str) -> sqlite3.Row:
        row = self.store.query_one(
            "SELECT vpp_location.*, organisation.org_id, organisation.name AS org_name,"
            " organisation.org_type FROM vpp_location"
            " JOIN organisation ON organisation.id = vpp_location.organisation_id WHERE uid = ?",
            (uid,),
        )
        if row is None:
            raise SimError(404, "LOCATION_NOT_FOUND", f"No location {uid}.")
        return row

    def locations(self, org_id: str) -> list[sqlite3.Row]:
        return self.store.query(
            "SELECT vpp_location.*,"
            " (SELECT count(*) FROM vpp_token WHERE location_id = vpp_location.id) AS tokens,"
            " (SELECT count(*) FROM vpp_asset WHERE location_id = vpp_location.id) AS assets"
            " FROM vpp_location JOIN organisation ON organisation.id = vpp_location.organisation_id"
            " WHERE organisation.org_id = ? ORDER BY vpp_location.location_name",
            (org_id,),
        )

    def location_json(self, uid: str) -> dict[str, Any]:
        location = self.location(uid)
        tokens = self.store.query(
            "SELECT issued_at, expires_at, revoked, downloaded_by FROM vpp_token"
            " WHERE location_id = ? ORDER BY id",
            (location["id"],),
        )
        return {
            "uid": uid,
            "org_id": location["org_id"],
            "location_name": location["location_name"],
            "country": location["country"],
            "mdm_info": _mdm_info(location),
            "tokens": [dict(token) | {"revoked": bool(token["revoked"])} for token in tokens],
            "assets": self._asset_count(location["id"]),
        }

    def token_download(
        self, uid: str, *, validity_days: int = 365, issued_at: datetime | None = None
    ) -> IssuedContentToken:
        """Do what Apps and Books > Download does; earlier tokens of the location stay valid."""
        location = self.location(uid)
        signed_in = self.store.signed_in()
        if signed_in is None or signed_in["org_id"] != location["org_id"]:
            raise SimError(
                403, "SIGN_IN_REQUIRED", "Sign in with an Apple ID of this location's organisation."
            )
        if not 1 <= validity_days <= 365:
            raise SimError(400, "VALIDITY_INVALID", "A content token is valid 1 to 365 days.")
        issued_at = issued_at or self.store.now()
        expires_at = issued_at + timedelta(days=validity_days)
        inner = base64.b64encode(secrets.token_bytes(64)).decode()
        payload = {
            "token": base64.b64encode(inner.encode()).decode(),
            "expDate": expires_at.strftime(EXP_DATE_FORMAT),
            "orgName": location["org_name"],
        }
        # Apple's v2 example is indented by four spaces; the file is one line of base64.
        content = base64.b64encode(json.dumps(payload, indent=4).encode())
        with self.store.transaction() as connection:
            connection.execute(
                "INSERT INTO vpp_token (location_id, credential, issued_at, expires_at,"
                " downloaded_by) VALUES (?, ?, ?, ?, ?)",
                (
                    location["id"],
                    content.decode(),
                    timestamp(issued_at),
                    timestamp(expires_at),
                    signed_in["apple_id"],
                ),
            )
        safe_name = re.sub(r"[^A-Za-z0-9._-]+", "_", location["location_name"])
        return IssuedContentToken(filename=f"sToken_for_{safe_name}.vpptoken", content=content)

    def token_revoke(self, content: bytes) -> None:
        """Revoke a content token, as Apple does early at times (answers 9625 from then on)."""
        credential = b"".join(content.split()).decode("ascii", "replace")
        with self.store.transaction() as connection:
            changed = connection.execute(
                "UPDATE vpp_token SET revoked = 1 WHERE credential = ?", (credential,)
            ).rowcount
        if not changed:
            raise SimError(404, "TOKEN_NOT_FOUND", "No content token like this was issued.")

    def mdm_info_set(self, uid: str, mdm_info: dict[str, str] | None) -> None:
        """Set the location's mdmInfo, as another MDM would (None clears it)."""
        location = self.location(uid)
        values: tuple[str | None, ...] = (None, None, None)
        if mdm_info is not None:
            values = tuple(str(mdm_info.get(name, "")) for name in ("id", "name", "metadata"))
        with self.store.transaction() as connection:
            connection.execute(
                "UPDATE vpp_location SET mdm_id = ?, mdm_name = ?, mdm_metadata = ? WHERE id = ?",
                (*values, location["id"]),
            )

    def assets_add(self, uid: str, *, count: int, licences: int = 10) -> None:
        """Buy `count` apps with `licences` licences each, a fifth of them assigned."""
        location = self.location(uid)
        if not 0 < count <= 10_000 or not 0 < licences <= 1_000_000:
            raise SimError(400, "COUNT_INVALID", "Add 1 to 10000 assets of 1 to 1000000 licences.")
        rows = [
            (location["id"], str(300_000_000 + secrets.randbelow(10**9)), licences, licences // 5)
            for _ in range(count)
        ]
        with self.store.transaction() as connection:
            connection.executemany(
                "INSERT INTO vpp_asset (location_id, adam_id, total_count, assigned_count)"
                " VALUES (?, ?, ?, ?)",
                rows,
            )
            connection.execute(
                "UPDATE vpp_location SET version = version + 1 WHERE id = ?", (location["id"],)
            )

    # The service.

    def handle(self, request: Request) -> Response:
        path = request.path[len(PREFIX) :].strip("/")
        if path == "service/config":
            return self._service_config(request)
        endpoint = ROUTES.get((request.method, path))
        if endpoint is None:
            known = any(route_path == path for _method, route_path in ROUTES)
            return apple_error(9726) if known else json_response({"errorMessage": "Not Found"}, 404)
        scripted = self.faults.answer(self.faults.take(endpoint))
        if scripted is not None:
            return scripted
        try:
            token = self._token(request)
            if endpoint == "vpp_assets":
                return self._assets(request, token)
            if endpoint == "vpp_client_config_update":
                self._client_config_update(request, token)
            return json_response(self._client_config(token))
        except AppleError as error:
            return apple_error(error.number)

    def _token(self, request: Request) -> sqlite3.Row:
        match = re.fullmatch(r"Bearer (\S+)", request.header("authorization") or "")
        if match is None:
            raise AppleError(9722)
        token = self.store.query_one(
            "SELECT vpp_token.*, vpp_location.uid FROM vpp_token"
            " JOIN vpp_location ON vpp_location.id = vpp_token.location_id"
            " WHERE credential = ?",
            (match[1],),
        )
        if token is None:
            raise AppleError(9622)
        if token["revoked"]:
            raise AppleError(9625)
        if token["expires_at"] <= timestamp(self.store.now()):
            raise AppleError(9621)
        return token

    def _client_config(self, token: sqlite3.Row) -> dict[str, Any]:
        location = self.location(token["uid"])
        expires_at = datetime.fromisoformat(token["expires_at"].replace("Z", "+00:00"))
        config: dict[str, Any] = {
            "countryISO2ACode": location["country"],
            "defaultPlatform": "volumestore",
            "locationName": location["location_name"],
            "tokenExpirationDate": expires_at.strftime(EXP_DATE_FORMAT),
            "uId": location["uid"],
            "websiteURL": "https://school.apple.com"
            if location["org_type"] == "edu"
            else "https://business.apple.com",
        }
        mdm_info = _mdm_info(location)
        if mdm_info is not None:
            config["mdmInfo"] = mdm_info
        return config

    def _client_config_update(self, request: Request, token: sqlite3.Row) -> None:
        content_type = (request.header("content-type") or "").split(";")[0].strip()
        if content_type != "application/json":
            raise AppleError(9727)
        try:
            body = request.json()
        except ValueError:
            raise AppleError(9602) from None
        mdm_info = body.get("mdmInfo") if isinstance(body, dict) else None
        if not isinstance(mdm_info, dict) or not all(
            isinstance(mdm_info.get(name), str) and mdm_info[name]
            for name in ("id", "name", "metadata")
        ):
            raise AppleError(9723)
        if len(mdm_info["id"]) > 100:
            raise AppleError(9724)
        if len(mdm_info["name"]) > 100:
            raise AppleError(9725)
        if len(mdm_info["metadata"]) > 255:
            raise AppleError(9602)
        self.mdm_info_set(token["uid"], mdm_info)

    def _asset_count(self, location_id: int) -> int:
        (row,) = self.store.query(
            "SELECT count(*) AS n FROM vpp_asset WHERE location_id = ?", (location_id,)
        )
        return row["n"]

    def _assets(self, request: Request, token: sqlite3.Row) -> Response:
        location = self.location(token["uid"])
        try:
            page_index = int(request.query.get("pageIndex", "0"))
        except ValueError:
            raise AppleError(9602) from None
        total = self._asset_count(location["id"])
        pages = max(1, -(-total // ASSETS_PAGE_SIZE))
        if not 0 <= page_index < pages:
            raise AppleError(9650)
        rows = self.store.query(
            "SELECT * FROM vpp_asset WHERE location_id = ? ORDER BY id LIMIT ? OFFSET ?",
            (location["id"], ASSETS_PAGE_SIZE, page_index * ASSETS_PAGE_SIZE),
        )
        answer: dict[str, Any] = {
            "assets": [_asset_json(row) for row in rows],
            "currentPageIndex": page_index,
            "size": len(rows),
            "totalPages": pages,
            "uId": location["uid"],
            "versionId": str(location["version"]),
        }
        if page_index + 1 < pages:
            answer["nextPageIndex"] = page_index + 1
        return json_response(answer)

    def _service_config(self, request: Request) -> Response:
        if request.method != "GET":
            return apple_error(9726)
        base = f"http://{request.host}{PREFIX}"
        return json_response(
            {
                "errorCodes": [
                    {"errorNumber": number, "errorMessage": message}
                    for number, (_status, message) in ERRORS.items()
                ],
                "urls": {
                    "clientConfig": base + "client/config",
                    "getAssets": base + "assets",
                },
            }
        )


def _mdm_info(location: sqlite3.Row) -> dict[str, str] | None:
    if not location["mdm_id"]:
        return None
    return {
        "id": location["mdm_id"],
        "name": location["mdm_name"] or "",
        "metadata": location["mdm_metadata"] or "",
    }


def _asset_json(row: sqlite3.Row) -> dict[str, Any]:
    return {
        "adamId": row["adam_id"],
        "assignedCount": row["assigned_count"],
        "availableCount": row["total_count"] - row["assigned_count"],
        "deviceAssignable": True,
        "pricingParam": "STDQ",
        "productType": "App",
        "retiredCount": 0,
        "revocable": True,
        "supportedPlatforms": ["iOS", "macOS"],
        "totalCount": row["total_count"],
    }
