"""The control API that tests and the demo use to play Apple's part, all JSON under /_sim/.

    POST /_sim/reset                              forget everything, clock back to real time
    GET  /_sim/state                              organisations, servers, clock, pending faults
    POST /_sim/organisations                      {name, email?, phone?, address?,
                                                   org_type? "edu"|"org", apple_ids? [..],
                                                   terms_accepted? true} -> organisation;
                                                  its first Apple ID is signed in
    POST /_sim/organisations/<org_id>/terms       {accepted: bool}
    POST /_sim/sign-in                            {apple_id, org_id? (checked)}
    POST /_sim/servers                            {org_id, server_name} -> server
    GET  /_sim/servers/<server_uuid>              server, its serials and profile uuids
    POST /_sim/servers/<server_uuid>/public-key   raw PEM or DER certificate as the body
    POST /_sim/servers/<server_uuid>/token        {validity_days? 365, issued_at? ISO-8601,
                                                   format? "p7m"|"json"}: what ABM's "Download
                                                  Token" does (revokes the previous token, sets
                                                  admin_id to the signed-in Apple ID); "p7m"
                                                  answers the file, "json" the credentials
                                                  (and needs no public key)
    POST /_sim/servers/<server_uuid>/devices      {count} -> {serials}
    POST /_sim/servers/<server_uuid>/assign-limit {devices: int|null, per_seconds? 60}
    GET  /_sim/devices/<serial>                   a device as Apple stores it
    POST /_sim/devices/modify                     {serials, changes? {field: value},
                                                   server_uuid? (move to that server)}
    POST /_sim/devices/delete                     {serials, released_by_replacement? false}
    POST /_sim/faults                             {endpoint, script: [entries]} (see faults.py)
    POST /_sim/faults/clear
    GET  /_sim/clock                              {now, offset_seconds}
    POST /_sim/clock                              {advance_seconds}
    POST /_sim/settings                           {quoted_errors?: bool} (depsim's "CODE"),
                                                  {reset_token_code?: "token_rejected" |
                                                   "signature_invalid"} (a reset token's 403)

Apps and Books and the Push Certificates Portal add the calls listed in control_credentials.py.
Refusals answer {"error": CODE, "message": text} with a 4xx status.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Callable
from typing import Any

from applesim import inventory
from applesim.control_requests import field, json_body
from applesim.database import SimError, timestamp, timestamp_parse
from applesim.dep import DEPService
from applesim.faults import FaultScripts
from applesim.store import SimStore
from applesim.web import Request, Response, attachment_response, json_response

RESET_TOKEN_CODES = ("token_rejected", "signature_invalid")


def _organisation_json(row: sqlite3.Row) -> dict[str, Any]:
    return {
        "org_id": row["org_id"],
        "name": row["name"],
        "email": row["email"],
        "phone": row["phone"],
        "address": row["address"],
        "org_type": row["org_type"],
        "org_version": row["org_version"],
        "terms_accepted": bool(row["terms_accepted"]),
    }


def _server_json(row: sqlite3.Row) -> dict[str, Any]:
    return {
        "server_name": row["server_name"],
        "server_uuid": row["server_uuid"],
        "admin_id": row["admin_id"],
        "has_public_key": row["certificate"] is not None,
    }


class ControlAPI:
    def __init__(
        self,
        store: SimStore,
        dep: DEPService,
        faults: FaultScripts,
        *,
        extra_routes: tuple[tuple[str, str, Callable[..., Response]], ...] = (),
    ) -> None:
        self.store = store
        self.dep = dep
        self.faults = faults
        self.routes: list[tuple[str, str, Callable[..., Response]]] = [
            ("POST", r"/_sim/reset", self.reset),
            ("GET", r"/_sim/state", self.state),
            ("POST", r"/_sim/organisations", self.organisation_create),
            ("POST", r"/_sim/organisations/(?P<org_id>\w+)/terms", self.terms_set),
            ("POST", r"/_sim/sign-in", self.sign_in),
            ("POST", r"/_sim/servers", self.server_create),
            ("GET", r"/_sim/servers/(?P<server_uuid>\w+)", self.server),
            ("POST", r"/_sim/servers/(?P<server_uuid>\w+)/public-key", self.public_key_upload),
            ("POST", r"/_sim/servers/(?P<server_uuid>\w+)/token", self.token_download),
            ("POST", r"/_sim/servers/(?P<server_uuid>\w+)/devices", self.devices_add),
            ("POST", r"/_sim/servers/(?P<server_uuid>\w+)/assign-limit", self.assign_limit_set),
            ("GET", r"/_sim/devices/(?P<serial>\w+)", self.device),
            ("POST", r"/_sim/devices/modify", self.devices_modify),
            ("POST", r"/_sim/devices/delete", self.devices_delete),
            ("POST", r"/_sim/faults", self.faults_set),
            ("POST", r"/_sim/faults/clear", self.faults_clear),
            ("GET", r"/_sim/clock", self.clock),
            ("POST", r"/_sim/clock", self.clock_advance),
            ("POST", r"/_sim/settings", self.settings_set),
            *extra_routes,
        ]

    def handle(self, request: Request) -> Response:
        for method, pattern, action in self.routes:
            match = re.fullmatch(pattern, request.path)
            if match and method == request.method:
                try:
                    return action(request, **match.groupdict())
                except SimError as error:
                    return json_response(
                        {"error": error.code, "message": error.message}, error.status
                    )
        return json_response({"error": "NOT_FOUND", "message": "No such control call."}, 404)

    def reset(self, request: Request) -> Response:
        self.store.reset()
        self.dep.reset()
        self.faults.clear()
        return json_response({"reset": True})

    def state(self, request: Request) -> Response:
        organisations = []
        for organisation in self.store.organisations():
            servers = self.store.servers(organisation["org_id"])
            organisations.append(
                {**_organisation_json(organisation), "servers": [_server_json(s) for s in servers]}
            )
        signed_in = self.store.signed_in()
        return json_response(
            {
                "organisations": organisations,
                "signed_in": signed_in["apple_id"] if signed_in else None,
                "now": timestamp(self.store.now()),
                "faults_pending": self.faults.pending(),
            }
        )

    def organisation_create(self, request: Request) -> Response:
        body = json_body(request)
        organisation = self.store.organisation_create(
            name=field(body, "name", str, ""),
            email=field(body, "email", str, ""),
            phone=field(body, "phone", str, ""),
            address=field(body, "address", str, ""),
            org_type=field(body, "org_type", str, "org"),
            apple_ids=field(body, "apple_ids", list, []),
            terms_accepted=field(body, "terms_accepted", bool, True),
        )
        apple_ids = [
            row["email"]
            for row in self.store.apple_ids()
            if row["org_id"] == organisation["org_id"]
        ]
        return json_response({**_organisation_json(organisation), "apple_ids": apple_ids}, 201)

    def terms_set(self, request: Request, org_id: str) -> Response:
        accepted = field(json_body(request), "accepted", bool)
        self.store.terms_set(org_id, accepted=accepted)
        return json_response(_organisation_json(self.store.organisation(org_id)))

    def sign_in(self, request: Request) -> Response:
        body = json_body(request)
        apple_id = field(body, "apple_id", str)
        self.store.sign_in(apple_id, org_id=body.get("org_id"))
        return json_response({"signed_in": apple_id})

    def server_create(self, request: Request) -> Response:
        body = json_body(request)
        server = self.store.server_create(
            org_id=field(body, "org_id", str), server_name=field(body, "server_name", str)
        )
        return json_response(_server_json(server), 201)

    def server(self, request: Request, server_uuid: str) -> Response:
        server = self.store.server(server_uuid)
        return json_response(
            {
                **_server_json(server),
                "org_id": server["org_id"],
                "serials": inventory.device_serials(self.store, server_uuid),
                "profiles": inventory.profiles_of_server(self.store, server["id"]),
            }
        )

    def public_key_upload(self, request: Request, server_uuid: str) -> Response:
        self.store.public_key_upload(server_uuid, request.body)
        return json_response(_server_json(self.store.server(server_uuid)))

    def token_download(self, request: Request, server_uuid: str) -> Response:
        body = json_body(request)
        token_format = field(body, "format", str, "p7m")
        issued_at = body.get("issued_at")
        try:
            issued_at = timestamp_parse(issued_at) if issued_at else None
        except (TypeError, ValueError) as error:
            raise SimError(400, "FIELD_INVALID", "issued_at must be ISO-8601.") from error
        issued = self.store.server_token_download(
            server_uuid,
            validity_days=field(body, "validity_days", int, 365),
            issued_at=issued_at,
            encrypted=token_format != "json",
        )
        if issued.p7m is None:
            return json_response({**issued.credentials, "filename": issued.filename})
        return attachment_response(issued.p7m, "application/pkcs7-mime", issued.filename)

    def devices_add(self, request: Request, server_uuid: str) -> Response:
        count = field(json_body(request), "count", int)
        return json_response(
            {"serials": inventory.devices_add(self.store, server_uuid, count)}, 201
        )

    def assign_limit_set(self, request: Request, server_uuid: str) -> Response:
        body = json_body(request)
        devices = body.get("devices")
        if devices is not None:
            devices = field(body, "devices", int)
        per_seconds = float(field(body, "per_seconds", (int, float), 60))
        self.store.assign_limit_set(server_uuid, devices=devices, per_seconds=per_seconds)
        return json_response({"devices": devices, "per_seconds": per_seconds})

    def device(self, request: Request, serial: str) -> Response:
        return json_response(inventory.device_get(self.store, serial))

    def devices_modify(self, request: Request) -> Response:
        body = json_body(request)
        inventory.devices_modify(
            self.store,
            field(body, "serials", list),
            field(body, "changes", dict, {}),
            server_uuid=body.get("server_uuid"),
        )
        return json_response({"modified": len(body["serials"])})

    def devices_delete(self, request: Request) -> Response:
        body = json_body(request)
        serials = field(body, "serials", list)
        replaced = field(body, "released_by_replacement", bool, False)
        inventory.devices_delete(self.store, serials, released_by_replacement=replaced)
        return json_response({"deleted": len(serials)})

    def faults_set(self, request: Request) -> Response:
        body = json_body(request)
        self.faults.set(field(body, "endpoint", str), field(body, "script", list))
        return json_response({"faults_pending": self.faults.pending()})

    def faults_clear(self, request: Request) -> Response:
        self.faults.clear()
        return json_response({"faults_pending": {}})

    def clock(self, request: Request) -> Response:
        return json_response({"now": timestamp(self.store.now()), "offset_seconds": self._offset()})

    def clock_advance(self, request: Request) -> Response:
        seconds = field(json_body(request), "advance_seconds", (int, float))
        now = self.store.clock_advance(float(seconds))
        return json_response({"now": timestamp(now), "offset_seconds": self._offset()})

    def _offset(self) -> float:
        return float(self.store.setting("clock_offset") or 0)

    def settings_set(self, request: Request) -> Response:
        body = json_body(request)
        answer: dict[str, Any] = {}
        if "quoted_errors" in body or not body:
            quoted = field(body, "quoted_errors", bool, False)
            self.store.setting_set("quoted_errors", "1" if quoted else "0")
            answer["quoted_errors"] = quoted
        if "reset_token_code" in body:
            code = field(body, "reset_token_code", str)
            if code not in RESET_TOKEN_CODES:
                message = f"reset_token_code is one of {RESET_TOKEN_CODES}."
                raise SimError(400, "FIELD_INVALID", message)
            self.store.setting_set("reset_token_code", code)
            answer["reset_token_code"] = code
        return json_response(answer)
