"""Organisations, their Apple IDs, MDM servers and the server tokens ABM issues for them."""

from __future__ import annotations

import re
import secrets
import sqlite3
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography import x509

from applesim.database import SimDatabase, SimError, timestamp
from applesim.tokens import server_token_credentials_new, server_token_issue

ORG_TYPES = ("edu", "org")


@dataclass(frozen=True)
class IssuedToken:
    """What one press of "Download Token" produced."""

    filename: str
    credentials: dict[str, str]
    p7m: bytes | None


class SimStore(SimDatabase):
    """Organisations, Apple IDs, MDM servers and server tokens, on the simulator's database."""

    # Organisations and Apple IDs.

    def organisation_create(
        self,
        *,
        name: str,
        email: str = "",
        phone: str = "",
        address: str = "",
        org_type: str = "org",
        apple_ids: tuple[str, ...] | list[str] = (),
        terms_accepted: bool = True,
    ) -> sqlite3.Row:
        """Enrol an organisation; its first Apple ID is signed in, as the person who enrolled it."""
        name = name.strip()
        if not name:
            raise SimError(400, "NAME_REQUIRED", "An organisation needs a name.")
        if org_type not in ORG_TYPES:
            raise SimError(
                400, "ORG_TYPE_INVALID", f"Organisation type must be one of {ORG_TYPES}."
            )
        domain = (re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "org") + ".example.com"
        apple_ids = list(apple_ids) or [f"admin@{domain}"]
        with self.transaction() as connection:
            org_id = str(1_000_000 + secrets.randbelow(9_000_000))
            cursor = connection.execute(
                "INSERT INTO organisation (org_id, name, email, phone, address, org_type,"
                " org_version, terms_accepted) VALUES (?, ?, ?, ?, ?, ?, 'v2', ?)",
                (
                    org_id,
                    name,
                    email or f"it@{domain}",
                    phone or "+1 408 555 0100",
                    address or "1 Infinite Loop\nCupertino CA 95014\nUnited States",
                    org_type,
                    int(terms_accepted),
                ),
            )
            for apple_id in apple_ids:
                self._apple_id_add(cursor.lastrowid, apple_id)
            self.setting_set("signed_in_apple_id", apple_ids[0])
        return self.organisation(org_id)

    def _apple_id_add(self, organisation_pk: int | None, email: str) -> None:
        email = email.strip()
        if "@" not in email:
            raise SimError(400, "APPLE_ID_INVALID", f"{email!r} is not an Apple ID.")
        if self.query_one("SELECT 1 FROM apple_id WHERE email = ?", (email,)):
            raise SimError(409, "APPLE_ID_TAKEN", f"{email} already belongs to an organisation.")
        self.connection.execute(
            "INSERT INTO apple_id (organisation_id, email) VALUES (?, ?)", (organisation_pk, email)
        )

    def organisation(self, org_id: str) -> sqlite3.Row:
        row = self.query_one("SELECT * FROM organisation WHERE org_id = ?", (org_id,))
        if row is None:
            raise SimError(404, "ORGANISATION_NOT_FOUND", f"No organisation {org_id}.")
        return row

    def organisations(self) -> list[sqlite3.Row]:
        return self.query("SELECT * FROM organisation ORDER BY id")

    def terms_set(self, org_id: str, *, accepted: bool) -> None:
        self.organisation(org_id)
        with self.transaction() as connection:
            connection.execute(
                "UPDATE organisation SET terms_accepted = ? WHERE org_id = ?",
                (int(accepted), org_id),
            )

    def apple_ids(self) -> list[sqlite3.Row]:
        return self.query(
            "SELECT apple_id.email, organisation.name AS org_name, organisation.org_id"
            " FROM apple_id JOIN organisation ON organisation.id = apple_id.organisation_id"
            " ORDER BY organisation.id, apple_id.id"
        )

    def sign_in(self, apple_id: str, *, org_id: str | None = None) -> None:
        row = self.query_one(
            "SELECT organisation.org_id FROM apple_id"
            " JOIN organisation ON organisation.id = apple_id.organisation_id"
            " WHERE apple_id.email = ?",
            (apple_id,),
        )
        if row is None or (org_id is not None and row["org_id"] != org_id):
            raise SimError(404, "APPLE_ID_NOT_FOUND", f"No Apple ID {apple_id} here.")
        self.setting_set("signed_in_apple_id", apple_id)

    def signed_in(self) -> sqlite3.Row | None:
        """The signed-in Apple ID with its organisation's columns, if anyone is signed in."""
        return self.query_one(
            "SELECT apple_id.email AS apple_id, organisation.*"
            " FROM apple_id JOIN organisation ON organisation.id = apple_id.organisation_id"
            " WHERE apple_id.email = ?",
            (self.setting("signed_in_apple_id") or "",),
        )

    # MDM servers and their server tokens.

    def server_create(self, *, org_id: str, server_name: str) -> sqlite3.Row:
        organisation = self.organisation(org_id)
        server_name = server_name.strip()
        if not server_name or len(server_name) > 100:
            raise SimError(400, "SERVER_NAME_INVALID", "An MDM server needs a name (100 at most).")
        server_uuid = uuid.uuid4().hex.upper()
        with self.transaction() as connection:
            connection.execute(
                "INSERT INTO mdm_server (organisation_id, server_name, server_uuid)"
                " VALUES (?, ?, ?)",
                (organisation["id"], server_name, server_uuid),
            )
        return self.server(server_uuid)

    def server(self, server_uuid: str) -> sqlite3.Row:
        row = self.query_one(
            "SELECT mdm_server.*, organisation.org_id FROM mdm_server"
            " JOIN organisation ON organisation.id = mdm_server.organisation_id"
            " WHERE server_uuid = ?",
            (server_uuid,),
        )
        if row is None:
            raise SimError(404, "SERVER_NOT_FOUND", f"No MDM server {server_uuid}.")
        return row

    def servers(self, org_id: str) -> list[sqlite3.Row]:
        return self.query(
            "SELECT mdm_server.*, (SELECT count(*) FROM device"
            " WHERE device.mdm_server_id = mdm_server.id) AS device_count"
            " FROM mdm_server JOIN organisation ON organisation.id = mdm_server.organisation_id"
            " WHERE organisation.org_id = ? ORDER BY mdm_server.server_name",
            (org_id,),
        )

    def public_key_upload(self, server_uuid: str, certificate: bytes) -> None:
        """Keep the certificate ABM will encrypt server tokens to, as ABM checks it: PEM or DER."""
        server = self.server(server_uuid)
        try:
            if certificate.lstrip().startswith(b"-----BEGIN"):
                x509.load_pem_x509_certificate(certificate)
            else:
                x509.load_der_x509_certificate(certificate)
        except ValueError as error:
            raise SimError(
                400, "PUBLIC_KEY_INVALID", "The file is not a PEM or DER X.509 certificate."
            ) from error
        with self.transaction() as connection:
            connection.execute(
                "UPDATE mdm_server SET certificate = ? WHERE id = ?", (certificate, server["id"])
            )

    def server_token_download(
        self,
        server_uuid: str,
        *,
        validity_days: int = 365,
        issued_at: datetime | None = None,
        encrypted: bool = True,
    ) -> IssuedToken:
        """Do what "Download Token" does: revoke the server's previous token and issue a new one.

        `encrypted=False` skips the .p7m (and the need for a public key) so tests can use the
        credentials directly.
        """
        server = self.server(server_uuid)
        signed_in = self.signed_in()
        if signed_in is None or signed_in["org_id"] != server["org_id"]:
            raise SimError(
                403, "SIGN_IN_REQUIRED", "Sign in with an Apple ID of this server's organisation."
            )
        if encrypted and server["certificate"] is None:
            raise SimError(409, "PUBLIC_KEY_REQUIRED", "Upload a public key for this server first.")
        if not 1 <= validity_days <= 365:
            raise SimError(400, "VALIDITY_INVALID", "A server token is valid 1 to 365 days.")
        issued_at = issued_at or self.now()
        expires_at = issued_at + timedelta(days=validity_days)
        credentials = server_token_credentials_new(issued_at=issued_at)
        p7m = None
        if encrypted:
            p7m = server_token_issue(
                certificate=bytes(server["certificate"]),
                consumer_key=credentials["consumer_key"],
                consumer_secret=credentials["consumer_secret"],
                access_token=credentials["access_token"],
                access_secret=credentials["access_secret"],
                access_token_expiry=expires_at,
            )
        with self.transaction() as connection:
            connection.execute(
                "UPDATE server_token SET revoked = 1 WHERE mdm_server_id = ?", (server["id"],)
            )
            connection.execute(
                "INSERT INTO server_token (mdm_server_id, consumer_key, consumer_secret,"
                " access_token, access_secret, issued_at, expires_at, downloaded_by)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    server["id"],
                    credentials["consumer_key"],
                    credentials["consumer_secret"],
                    credentials["access_token"],
                    credentials["access_secret"],
                    timestamp(issued_at),
                    timestamp(expires_at),
                    signed_in["apple_id"],
                ),
            )
            connection.execute(
                "UPDATE mdm_server SET admin_id = ? WHERE id = ?",
                (signed_in["apple_id"], server["id"]),
            )
        safe_name = re.sub(r"[^A-Za-z0-9._-]+", "_", server["server_name"])
        filename = f"{safe_name}_Token_{issued_at.strftime('%Y-%m-%dT%H-%M-%SZ')}_smime.p7m"
        token_json = {**credentials, "access_token_expiry": timestamp(expires_at)}
        return IssuedToken(filename=filename, credentials=token_json, p7m=p7m)

    def server_token_reset(self, consumer_key: str, access_token: str) -> bool:
        """Whether these OAuth keys are a server token a newer download in ABM has reset."""
        row = self.query_one(
            "SELECT 1 FROM server_token"
            " WHERE consumer_key = ? AND access_token = ? AND revoked = 1",
            (consumer_key, access_token),
        )
        return row is not None

    def server_token_latest(self, server_uuid: str) -> sqlite3.Row | None:
        """The token "Download Token" issued last for this server, revoked or not."""
        return self.query_one(
            "SELECT server_token.* FROM server_token"
            " JOIN mdm_server ON mdm_server.id = server_token.mdm_server_id"
            " WHERE server_uuid = ? ORDER BY server_token.id DESC LIMIT 1",
            (server_uuid,),
        )

    def server_token(self, consumer_key: str, access_token: str) -> sqlite3.Row | None:
        """The usable (not revoked, not expired) server token with these OAuth keys."""
        return self.query_one(
            "SELECT * FROM server_token WHERE consumer_key = ? AND access_token = ?"
            " AND revoked = 0 AND expires_at > ?",
            (consumer_key, access_token, timestamp(self.now())),
        )

    def assign_limit_set(
        self, server_uuid: str, *, devices: int | None, per_seconds: float = 60
    ) -> None:
        """Allow `devices` profile assignments per `per_seconds` (None: no limit)."""
        server = self.server(server_uuid)
        with self.transaction() as connection:
            connection.execute(
                "UPDATE mdm_server SET assign_limit = ?, assign_window = ? WHERE id = ?",
                (devices, per_seconds, server["id"]),
            )
