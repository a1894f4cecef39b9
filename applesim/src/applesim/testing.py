"""Start a simulator inside a test process and drive it through its control API.

sim = sim_start()
organisation = sim.control.organisation_create("Example School", org_type="edu")
server_uuid = sim.control.server_create(organisation["org_id"], "Portal")
credentials = sim.control.token_credentials(server_uuid)
...
sim.stop()
"""

from __future__ import annotations

import json
import os
import threading
import urllib.error
import urllib.request
from datetime import datetime
from typing import Any

from applesim.database import timestamp, timestamp_parse
from applesim.server import SimHTTPServer, sim_server_new


class SimControlError(Exception):
    """The control API refused a call; `code` is its error code."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code


class SimControl:
    """Typed wrappers around the /_sim/ control API of a running simulator."""

    def __init__(self, url: str, *, token: str | None = None) -> None:
        self.url = url
        # The demo's applesim listens beyond loopback and wants its control token.
        self.token = os.environ.get("APPLESIM_CONTROL_TOKEN", "") if token is None else token

    def _call(
        self, method: str, path: str, payload: Any = None, *, raw: bytes | None = None
    ) -> bytes:
        body = raw if raw is not None else json.dumps(payload or {}).encode()
        request = urllib.request.Request(  # noqa: S310 (the simulator's own http URL)
            self.url + path,
            data=body if method != "GET" else None,
            method=method,
            headers={"Content-Type": "application/octet-stream" if raw else "application/json"}
            | ({"Authorization": f"Bearer {self.token}"} if self.token else {}),
        )
        try:
            with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310 (as above)
                return response.read()
        except urllib.error.HTTPError as error:
            refusal = json.loads(error.read() or b"{}")
            raise SimControlError(
                error.code, refusal.get("error", ""), refusal.get("message", "")
            ) from None

    def _json(self, method: str, path: str, payload: Any = None) -> Any:
        return json.loads(self._call(method, path, payload))

    def reset(self) -> None:
        self._call("POST", "/_sim/reset")

    def state(self) -> dict[str, Any]:
        return self._json("GET", "/_sim/state")

    def organisation_create(
        self,
        name: str = "Example Organisation",
        *,
        apple_ids: list[str] | None = None,
        org_type: str = "org",
        terms_accepted: bool = True,
        **fields: str,
    ) -> str:
        """Enrol an organisation (fields: email, phone, address) and sign in its first Apple ID.

        Returns its org_id; `state()` has the rest.
        """
        payload = {
            "name": name,
            "apple_ids": apple_ids or [],
            "org_type": org_type,
            "terms_accepted": terms_accepted,
            **fields,
        }
        return self._json("POST", "/_sim/organisations", payload)["org_id"]

    def terms_set(self, org_id: str, accepted: bool) -> None:
        self._call("POST", f"/_sim/organisations/{org_id}/terms", {"accepted": accepted})

    def sign_in(self, apple_id: str, *, org_id: str | None = None) -> None:
        """Sign in to ABM as this Apple ID (checked to be of `org_id` when given)."""
        self._call("POST", "/_sim/sign-in", {"apple_id": apple_id, "org_id": org_id})

    def server_create(self, org_id: str, server_name: str = "MDM Portal") -> str:
        """Add an MDM server in ABM; returns its server_uuid."""
        payload = {"org_id": org_id, "server_name": server_name}
        return self._json("POST", "/_sim/servers", payload)["server_uuid"]

    def server(self, server_uuid: str) -> dict[str, Any]:
        return self._json("GET", f"/_sim/servers/{server_uuid}")

    def public_key_upload(self, server_uuid: str, certificate: bytes) -> None:
        self._call("POST", f"/_sim/servers/{server_uuid}/public-key", raw=certificate)

    def _token_payload(
        self, validity_days: int, issued_at: datetime | None, token_format: str
    ) -> dict[str, Any]:
        payload: dict[str, Any] = {"validity_days": validity_days, "format": token_format}
        if issued_at is not None:
            payload["issued_at"] = timestamp(issued_at)
        return payload

    def token_download(
        self, server_uuid: str, validity_days: int = 365, *, issued_at: datetime | None = None
    ) -> bytes:
        """Press "Download Token" in ABM: the .p7m encrypted to the uploaded public key."""
        payload = self._token_payload(validity_days, issued_at, "p7m")
        return self._call("POST", f"/_sim/servers/{server_uuid}/token", payload)

    def token_credentials(
        self, server_uuid: str, validity_days: int = 365, *, issued_at: datetime | None = None
    ) -> dict[str, str]:
        """Like token_download, but answers the decrypted OAuth credentials (no key needed)."""
        payload = self._token_payload(validity_days, issued_at, "json")
        return self._json("POST", f"/_sim/servers/{server_uuid}/token", payload)

    def devices_add(self, server_uuid: str, count: int) -> list[str]:
        return self._json("POST", f"/_sim/servers/{server_uuid}/devices", {"count": count})[
            "serials"
        ]

    def devices_modify(
        self, serials: list[str], *, server_uuid: str | None = None, **changes: str
    ) -> None:
        """Change device fields (color="RED"), or move the devices to another server."""
        payload: dict[str, Any] = {"serials": serials, "changes": changes}
        if server_uuid is not None:
            payload["server_uuid"] = server_uuid
        self._call("POST", "/_sim/devices/modify", payload)

    def devices_delete(self, serials: list[str], *, released_by_replacement: bool = False) -> None:
        payload = {"serials": serials, "released_by_replacement": released_by_replacement}
        self._call("POST", "/_sim/devices/delete", payload)

    def device(self, serial_number: str) -> dict[str, Any]:
        return self._json("GET", f"/_sim/devices/{serial_number}")

    def device_serials(self, server_uuid: str) -> set[str]:
        """Exactly the serials Apple has assigned to this MDM server now."""
        return set(self.server(server_uuid)["serials"])

    def assign_limit_set(
        self, server_uuid: str, devices: int | None, per_seconds: float = 60
    ) -> None:
        """Throttle profile assignments to `devices` per `per_seconds` (None: unlimited)."""
        payload = {"devices": devices, "per_seconds": per_seconds}
        self._call("POST", f"/_sim/servers/{server_uuid}/assign-limit", payload)

    def faults_set(self, endpoint: str, script: list[dict[str, Any]]) -> None:
        self._call("POST", "/_sim/faults", {"endpoint": endpoint, "script": script})

    def faults_clear(self) -> None:
        self._call("POST", "/_sim/faults/clear")

    def clock_advance(self, seconds: float) -> datetime:
        """Move Apple's clock forward; returns Apple's new now."""
        return timestamp_parse(
            self._json("POST", "/_sim/clock", {"advance_seconds": seconds})["now"]
        )

    def now(self) -> datetime:
        return timestamp_parse(self._json("GET", "/_sim/clock")["now"])

    # Apps and Books (see applesim.control_credentials).

    def vpp_location_create(self, org_id: str, location_name: str, *, country: str = "US") -> str:
        """Add an Apps and Books location to an organisation; returns its uid."""
        payload = {"org_id": org_id, "location_name": location_name, "country": country}
        return self._json("POST", "/_sim/vpp/locations", payload)["uid"]

    def vpp_location(self, uid: str) -> dict[str, Any]:
        return self._json("GET", f"/_sim/vpp/locations/{uid}")

    def vpp_token_download(
        self, uid: str, validity_days: int = 365, *, issued_at: datetime | None = None
    ) -> bytes:
        """Press Apps and Books > Download: the .vpptoken (earlier ones stay valid)."""
        payload: dict[str, Any] = {"validity_days": validity_days}
        if issued_at is not None:
            payload["issued_at"] = timestamp(issued_at)
        return self._call("POST", f"/_sim/vpp/locations/{uid}/token", payload)

    def vpp_mdm_info_set(self, uid: str, mdm_info: dict[str, str] | None) -> None:
        """Let another MDM claim the location ({id, name, metadata}), or nobody (None)."""
        self._call("POST", f"/_sim/vpp/locations/{uid}/mdm-info", {"mdm_info": mdm_info})

    def vpp_assets_add(self, uid: str, count: int, *, licences: int = 10) -> None:
        payload = {"count": count, "licences": licences}
        self._call("POST", f"/_sim/vpp/locations/{uid}/assets", payload)

    def vpp_token_revoke(self, content_token: bytes) -> None:
        """Apple revokes this .vpptoken: the service answers 9625 from now on."""
        self._call("POST", "/_sim/vpp/tokens/revoke", raw=content_token)

    def vpp_rate_limit(
        self, *, endpoint: str = "vpp_client_config", count: int = 1, retry_after: str = "2"
    ) -> None:
        """Answer the next `count` requests to `endpoint` with 9646 (HTTP 429, Retry-After)."""
        body = json.dumps({"errorNumber": 9646, "errorMessage": "Too many requests."})
        fault = {
            "count": count,
            "status": 429,
            "body": body,
            "headers": {"Retry-After": retry_after},
            "content_type": "application/json;charset=UTF8",
        }
        self.faults_set(endpoint, [fault])

    # The Apple Push Certificates Portal.

    def push_vendor_issue(self, vendor_name: str = "Example MDM Vendor") -> bytes:
        """An MDM vendor certificate: PEM of its private key, certificate and Apple's chain."""
        return self._call("POST", "/_sim/pushcert/vendor", {"vendor_name": vendor_name})

    def push_sign_in(self, apple_id: str) -> None:
        self._call("POST", "/_sim/pushcert/sign-in", {"apple_id": apple_id})

    def push_certificate_create(self, apple_id: str, request: bytes) -> bytes:
        """Create a Certificate with this signed request (a new topic); the issued PEM."""
        payload = {"apple_id": apple_id, "request": request.decode("ascii")}
        return self._call("POST", "/_sim/pushcert/certificates", payload)

    def push_certificate_renew(self, apple_id: str, topic: str, request: bytes) -> bytes:
        """Renew this Apple ID's certificate for `topic` (same topic, new expiry); the PEM."""
        payload = {"apple_id": apple_id, "topic": topic, "request": request.decode("ascii")}
        return self._call("POST", "/_sim/pushcert/certificates", payload)

    def push_certificates(self, apple_id: str) -> list[dict[str, Any]]:
        return self._json("GET", f"/_sim/pushcert/certificates/{apple_id}")["certificates"]

    def quoted_errors_set(self, quoted: bool) -> None:
        """Quote error bodies as depsim does ("INVALID_CURSOR")."""
        self._call("POST", "/_sim/settings", {"quoted_errors": quoted})

    def reset_token_code_set(self, code: str) -> None:
        """What Apple answers a reset token with: "token_rejected" (default) or
        "signature_invalid"."""
        self._call("POST", "/_sim/settings", {"reset_token_code": code})


class RunningSim:
    """A simulator serving on a real socket from a background thread."""

    def __init__(self, server: SimHTTPServer) -> None:
        self.server = server
        self.url = f"http://{server.host}:{server.port}"
        self.control = SimControl(self.url)
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join()
        self.server.simulator.store.close()

    def __enter__(self) -> RunningSim:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def sim_start(*, state_path: str | None = None, port: int = 0) -> RunningSim:
    """Start a simulator on 127.0.0.1 (port 0: any free port); in memory unless state_path."""
    return RunningSim(sim_server_new(host="127.0.0.1", port=port, state_path=state_path))
