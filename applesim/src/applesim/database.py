"""Apple's state, kept in one stdlib sqlite3 database, and the simulated clock.

One connection serves every thread behind a re-entrant lock: the simulator is a test double,
so correctness under the threaded HTTP server matters more than concurrency.
"""

from __future__ import annotations

import secrets
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

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


class SimError(Exception):
    """A refusal the control API and the ABM page show as-is (never a DEP web service error)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def timestamp(moment: datetime) -> str:
    """Apple's timestamp format: RFC 3339 UTC, whole seconds, with Z."""
    return moment.astimezone(UTC).strftime(TIMESTAMP_FORMAT)


def timestamp_parse(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


class SimDatabase:
    """The connection, its transactions, settings and the simulated clock."""

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
