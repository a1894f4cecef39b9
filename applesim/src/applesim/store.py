"""Apple's state, kept in one stdlib sqlite3 database, and the simulated clock.

One connection serves every thread behind a re-entrant lock: the simulator is a test double,
so correctness under the threaded HTTP server matters more than concurrency.
"""

from __future__ import annotations

import re
import secrets
import sqlite3
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography import x509

from applesim.tokens import server_token_credentials_new, server_token_issue

SCHEMA = """
CREATE TABLE IF NOT EXISTS setting (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS organisation (
    id INTEGER PRIMARY KEY, org_id TEXT NOT NULL UNIQUE, name TEXT NOT NULL,
    email TEXT NOT NULL, phone TEXT NOT NULL, address TEXT NOT NULL, org_type TEXT NOT NULL,
    org_version TEXT NOT NULL, terms_accepted INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS apple_id (
    id INTEGER PRIMARY KEY, organisation_id INTEGER NOT NULL, email TEXT NOT NULL UNIQUE
);
CREATE TABLE IF NOT EXISTS mdm_server (
    id INTEGER PRIMARY KEY, organisation_id INTEGER NOT NULL, server_name TEXT NOT NULL,
    server_uuid TEXT NOT NULL UNIQUE, certificate BLOB, admin_id TEXT NOT NULL DEFAULT '',
    assign_limit INTEGER, assign_window REAL NOT NULL DEFAULT 60
);
CREATE TABLE IF NOT EXISTS server_token (
    id INTEGER PRIMARY KEY, mdm_server_id INTEGER NOT NULL, consumer_key TEXT NOT NULL UNIQUE,
    consumer_secret TEXT NOT NULL, access_token TEXT NOT NULL UNIQUE, access_secret TEXT NOT NULL,
    issued_at TEXT NOT NULL, expires_at TEXT NOT NULL, revoked INTEGER NOT NULL DEFAULT 0,
    downloaded_by TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS oauth_nonce (
    consumer_key TEXT NOT NULL, timestamp INTEGER NOT NULL, nonce TEXT NOT NULL,
    PRIMARY KEY (consumer_key, timestamp, nonce)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS device (
    id INTEGER PRIMARY KEY, serial_number TEXT NOT NULL UNIQUE, organisation_id INTEGER NOT NULL,
    mdm_server_id INTEGER NOT NULL, model TEXT NOT NULL, description TEXT NOT NULL,
    color TEXT NOT NULL, asset_tag TEXT NOT NULL, os TEXT NOT NULL, device_family TEXT NOT NULL,
    profile_status TEXT NOT NULL, profile_uuid TEXT NOT NULL, profile_assign_time TEXT,
    profile_push_time TEXT, device_assigned_date TEXT NOT NULL, device_assigned_by TEXT NOT NULL,
    mdm_migration_deadline TEXT
);
CREATE INDEX IF NOT EXISTS device_by_server ON device (mdm_server_id, id);
CREATE TABLE IF NOT EXISTS device_event (
    seq INTEGER PRIMARY KEY, mdm_server_id INTEGER NOT NULL, serial_number TEXT NOT NULL,
    op_type TEXT NOT NULL, op_date TEXT NOT NULL,
    released_by_replacement INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS device_event_by_server ON device_event (mdm_server_id, seq);
CREATE TABLE IF NOT EXISTS profile (
    id INTEGER PRIMARY KEY, mdm_server_id INTEGER NOT NULL, profile_uuid TEXT NOT NULL UNIQUE,
    definition TEXT NOT NULL, created_at TEXT NOT NULL
);
"""
# Columns added since the first release, for state files written before them.
ADDED_COLUMNS = (
    ("device", "mdm_migration_deadline", "TEXT"),
    ("device_event", "released_by_replacement", "INTEGER NOT NULL DEFAULT 0"),
)
TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
ORG_TYPES = ("edu", "org")


class SimError(Exception):
    """A refusal the control API and the ABM page show as-is (never a DEP web service error)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


@dataclass(frozen=True)
class IssuedToken:
    """What one press of "Download Token" produced."""

    filename: str
    credentials: dict[str, str]
    p7m: bytes | None


def timestamp(moment: datetime) -> str:
    """Apple's timestamp format: RFC 3339 UTC, whole seconds, with Z."""
    return moment.astimezone(UTC).strftime(TIMESTAMP_FORMAT)


def timestamp_parse(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


class SimStore:
    """Organisations, Apple IDs, MDM servers, server tokens and the clock."""

    def __init__(self, path: str | None = None) -> None:
        self.lock = threading.RLock()
        self.connection = sqlite3.connect(
            path or ":memory:", check_same_thread=False, isolation_level=None
        )
        self.connection.row_factory = sqlite3.Row
        if path:
            self.connection.execute("PRAGMA journal_mode=WAL")
            self.connection.execute("PRAGMA synchronous=NORMAL")
        self.connection.executescript(SCHEMA)
        for table, column, definition in ADDED_COLUMNS:
            columns = self.connection.execute(f"PRAGMA table_info({table})")
            present = {row["name"] for row in columns}
            if column not in present:
                self.connection.execute(f"ALTER TABLE {table} ADD COLUMN {column} {definition}")
        self._clock_offset = float(self.setting("clock_offset") or 0)

    def close(self) -> None:
        with self.lock:
            self.connection.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        with self.lock:
            if self.connection.in_transaction:
                yield self.connection
                return
            self.connection.execute("BEGIN IMMEDIATE")
            try:
                yield self.connection
            except BaseException:
                self.connection.execute("ROLLBACK")
                raise
            self.connection.execute("COMMIT")

    def query(self, sql: str, parameters: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        with self.lock:
            return self.connection.execute(sql, parameters).fetchall()

    def query_one(self, sql: str, parameters: tuple[Any, ...] = ()) -> sqlite3.Row | None:
        with self.lock:
            return self.connection.execute(sql, parameters).fetchone()

    def reset(self) -> None:
        with self.transaction() as connection:
            tables = connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            for (table,) in tables.fetchall():
                connection.execute(f"DELETE FROM {table}")  # noqa: S608 (our own tables)
        self._clock_offset = 0.0

    def setting(self, name: str) -> str | None:
        row = self.query_one("SELECT value FROM setting WHERE name = ?", (name,))
        return row["value"] if row else None

    def setting_set(self, name: str, value: str) -> None:
        with self.transaction() as connection:
            connection.execute(
                "INSERT INTO setting (name, value) VALUES (?, ?)"
                " ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                (name, value),
            )

    def cursor_secret(self) -> bytes:
        """The key cursors are signed with; kept in the state so cursors survive a restart."""
        with self.transaction():
            secret = self.setting("cursor_secret")
            if secret is None:
                secret = secrets.token_hex(32)
                self.setting_set("cursor_secret", secret)
        return bytes.fromhex(secret)

    # The clock: real time plus an offset, so tests can age cursors, sessions and tokens.

    def now(self) -> datetime:
        return datetime.now(UTC) + timedelta(seconds=self._clock_offset)

    def clock_advance(self, seconds: float) -> datetime:
        with self.lock:
            self._clock_offset += seconds
            self.setting_set("clock_offset", repr(self._clock_offset))
        return self.now()

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
