"""Devices and profiles: what an organisation owns and what each MDM server sees of it.

Every change to a device is appended to `device_event` (added, modified, deleted) for the MDM
server it concerns; /devices/sync replays that log after a cursor's sequence number.
"""

from __future__ import annotations

import json
import random
import sqlite3
import uuid
from collections.abc import Iterable
from typing import Any

from applesim.database import SimError, timestamp
from applesim.store import SimStore

# (model, description, device_family, os, colours, weight): the mix a school or company buys.
CATALOGUE = (
    ("iPad (10th generation)", "IPAD WI-FI 64GB", "iPad", "iPadOS", ("SILVER", "BLUE"), 30),
    ("iPad Air 11-inch (M2)", "IPAD AIR 11 WI-FI 128GB", "iPad", "iPadOS", ("SPACE GRAY",), 10),
    ("iPhone 15", "IPHONE 15 128GB", "iPhone", "iOS", ("BLACK", "BLUE", "PINK"), 20),
    ("iPhone 16 Pro", "IPHONE 16 PRO 256GB", "iPhone", "iOS", ("NATURAL TITANIUM",), 8),
    ("iPhone SE (3rd generation)", "IPHONE SE 64GB", "iPhone", "iOS", ("MIDNIGHT",), 6),
    (
        "MacBook Air (13-inch, M3, 2024)",
        "MBA 13.6 M3 8C CPU 16GB 512GB",
        "Mac",
        "OSX",
        ("SILVER",),
        14,
    ),
    (
        "MacBook Pro (14-inch, M4, 2024)",
        "MBP 14.2 M4 10C CPU 16GB 1TB",
        "Mac",
        "OSX",
        ("SPACE BLACK",),
        6,
    ),
    ("iMac (24-inch, M4, 2024)", "IMAC 24 M4 16GB 256GB", "Mac", "OSX", ("BLUE", "GREEN"), 2),
    ("Apple TV 4K (3rd generation)", "APPLE TV 4K WI-FI 64GB", "AppleTV", "tvOS", ("BLACK",), 2),
    ("Apple Vision Pro", "APPLE VISION PRO 256GB", "Vision", "visionOS", ("SILVER",), 1),
    ("iPod touch (7th generation)", "IPOD TOUCH 32GB", "iPod", "iOS", ("SPACE GRAY",), 1),
)
SERIAL_PREFIXES = {
    "iPad": "DMP", "iPhone": "F2L", "Mac": "C02", "AppleTV": "GY6", "Vision": "H0N", "iPod": "CCQ",
}  # fmt: skip
SERIAL_ALPHABET = "0123456789ABCDEFGHJKLMNPQRSTUVWXYZ"
DEVICE_COLUMNS = (
    "serial_number", "model", "description", "color", "asset_tag", "os", "device_family",
    "profile_status", "profile_uuid", "profile_assign_time", "profile_push_time",
    "device_assigned_date", "device_assigned_by", "mdm_migration_deadline",
)  # fmt: skip
MODIFIABLE_FIELDS = frozenset(DEVICE_COLUMNS) - {"serial_number"}


def _serials_new(store: SimStore, families: list[str]) -> list[str]:
    taken = {row[0] for row in store.query("SELECT serial_number FROM device")}
    serials = []
    for family in families:
        serial = ""
        while not serial or serial in taken:
            serial = SERIAL_PREFIXES[family] + "".join(random.choices(SERIAL_ALPHABET, k=9))
        taken.add(serial)
        serials.append(serial)
    return serials


def devices_add(store: SimStore, server_uuid: str, count: int) -> list[str]:
    """Assign `count` newly bought devices to an MDM server, as a reseller order would."""
    if not 1 <= count <= 1_000_000:
        raise SimError(400, "COUNT_INVALID", "Add between 1 and 1,000,000 devices.")
    server = store.server(server_uuid)
    signed_in = store.signed_in()
    assigned_by = signed_in["apple_id"] if signed_in else "reseller@apple.example.com"
    now = timestamp(store.now())
    models = random.choices(CATALOGUE, weights=[entry[5] for entry in CATALOGUE], k=count)
    serials = _serials_new(store, [entry[2] for entry in models])
    rows = []
    for serial, (model, description, family, os_name, colours, _weight) in zip(
        serials, models, strict=True
    ):
        colour = random.choice(colours)
        asset_tag = f"A-{random.randrange(100_000):05d}" if random.random() < 0.3 else ""
        rows.append(
            (serial, server["organisation_id"], server["id"], model, f"{description} {colour}",
             colour, asset_tag, os_name, family, "empty", "", now, assigned_by)
        )  # fmt: skip
    with store.transaction() as connection:
        connection.executemany(
            "INSERT INTO device (serial_number, organisation_id, mdm_server_id, model,"
            " description, color, asset_tag, os, device_family, profile_status, profile_uuid,"
            " device_assigned_date, device_assigned_by)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
        _events_log(connection, server["id"], serials, "added", now)
    return serials


def _events_log(
    connection: sqlite3.Connection, server_id: int, serials: Iterable[str], op_type: str, now: str
) -> None:
    connection.executemany(
        "INSERT INTO device_event (mdm_server_id, serial_number, op_type, op_date)"
        " VALUES (?, ?, ?, ?)",
        ((server_id, serial, op_type, now) for serial in serials),
    )


def _devices_owned(connection: sqlite3.Connection, serials: list[str]) -> list[sqlite3.Row]:
    rows = []
    for start in range(0, len(serials), 500):
        chunk = serials[start : start + 500]
        rows += connection.execute(
            f"SELECT id, serial_number, mdm_server_id, organisation_id FROM device"  # noqa: S608
            f" WHERE serial_number IN ({','.join('?' * len(chunk))})",
            chunk,
        ).fetchall()
    missing = set(serials) - {row["serial_number"] for row in rows}
    if missing:
        raise SimError(404, "DEVICE_NOT_FOUND", f"Unknown serials: {', '.join(sorted(missing))}.")
    return rows


def devices_modify(
    store: SimStore, serials: list[str], changes: dict[str, Any], *, server_uuid: str | None = None
) -> None:
    """Change device fields (a "modified" event) or move devices to another MDM server."""
    unknown = set(changes) - MODIFIABLE_FIELDS
    if unknown:
        raise SimError(400, "FIELD_INVALID", f"Cannot modify {', '.join(sorted(unknown))}.")
    target = store.server(server_uuid) if server_uuid else None
    now = timestamp(store.now())
    with store.transaction() as connection:
        for device in _devices_owned(connection, serials):
            serial, server_id = device["serial_number"], device["mdm_server_id"]
            if changes:
                assignments = ", ".join(f"{field} = ?" for field in changes)
                connection.execute(
                    f"UPDATE device SET {assignments} WHERE id = ?",  # noqa: S608 (checked names)
                    (*changes.values(), device["id"]),
                )
            if target is not None and target["id"] != server_id:
                if target["organisation_id"] != device["organisation_id"]:
                    raise SimError(400, "SERVER_INVALID", "That server is in another organisation.")
                # Moving a device is a deletion for the old server and an addition for the new.
                connection.execute(
                    "UPDATE device SET mdm_server_id = ?, device_assigned_date = ? WHERE id = ?",
                    (target["id"], now, device["id"]),
                )
                _events_log(connection, server_id, [serial], "deleted", now)
                _events_log(connection, target["id"], [serial], "added", now)
            elif changes:
                _events_log(connection, server_id, [serial], "modified", now)


def devices_delete(
    store: SimStore, serials: list[str], *, released_by_replacement: bool = False
) -> None:
    """Release devices from the organisation (a "deleted" event for their server), or, with
    `released_by_replacement`, release them because AppleCare replaced them."""
    now = timestamp(store.now())
    with store.transaction() as connection:
        for device in _devices_owned(connection, serials):
            connection.execute("DELETE FROM device WHERE id = ?", (device["id"],))
            connection.execute(
                "INSERT INTO device_event (mdm_server_id, serial_number, op_type, op_date,"
                " released_by_replacement) VALUES (?, ?, 'deleted', ?, ?)",
                (device["mdm_server_id"], device["serial_number"], now, released_by_replacement),
            )


def device_serials(store: SimStore, server_uuid: str) -> list[str]:
    server = store.server(server_uuid)
    rows = store.query("SELECT serial_number FROM device WHERE mdm_server_id = ?", (server["id"],))
    return [row[0] for row in rows]


def device_json(row: sqlite3.Row) -> dict[str, Any]:
    """A device as Apple sends it; unset timestamps are left out."""
    return {column: row[column] for column in DEVICE_COLUMNS if row[column] is not None}


def device_get(store: SimStore, serial_number: str) -> dict[str, Any]:
    row = store.query_one(
        "SELECT device.*, mdm_server.server_uuid FROM device"
        " JOIN mdm_server ON mdm_server.id = device.mdm_server_id WHERE serial_number = ?",
        (serial_number,),
    )
    if row is None:
        raise SimError(404, "DEVICE_NOT_FOUND", f"No device {serial_number}.")
    return {**device_json(row), "server_uuid": row["server_uuid"]}


def devices_page(store: SimStore, server_id: int, after_id: int, limit: int) -> list[sqlite3.Row]:
    """The server's current devices after a position, in a stable order, for a fetch."""
    return store.query(
        "SELECT * FROM device WHERE mdm_server_id = ? AND id > ? ORDER BY id LIMIT ?",
        (server_id, after_id, limit),
    )


def device_events(store: SimStore, server_id: int, after_seq: int, limit: int) -> list[sqlite3.Row]:
    """Logged changes after a sequence number, with the device's current fields when it has any."""
    return store.query(
        "SELECT device_event.seq, device_event.serial_number AS event_serial,"
        " device_event.op_type, device_event.op_date, device_event.released_by_replacement,"
        " device.*"
        " FROM device_event LEFT JOIN device ON device.serial_number = device_event.serial_number"
        " AND device.mdm_server_id = device_event.mdm_server_id"
        " WHERE device_event.mdm_server_id = ? AND device_event.seq > ?"
        " ORDER BY device_event.seq LIMIT ?",
        (server_id, after_seq, limit),
    )


def event_seq_latest(store: SimStore) -> int:
    rows = store.query("SELECT coalesce(max(seq), 0) FROM device_event")
    return rows[0][0]


def devices_of_server(
    store: SimStore, server_id: int, serials: list[str]
) -> dict[str, sqlite3.Row]:
    rows = []
    for start in range(0, len(serials), 500):
        chunk = serials[start : start + 500]
        rows += store.query(
            f"SELECT * FROM device WHERE mdm_server_id = ?"  # noqa: S608 (placeholders only)
            f" AND serial_number IN ({','.join('?' * len(chunk))})",
            (server_id, *chunk),
        )
    return {row["serial_number"]: row for row in rows}


def profile_create(store: SimStore, server_id: int, definition: dict[str, Any]) -> str:
    profile_uuid = uuid.uuid4().hex.upper()
    with store.transaction() as connection:
        connection.execute(
            "INSERT INTO profile (mdm_server_id, profile_uuid, definition, created_at)"
            " VALUES (?, ?, ?, ?)",
            (server_id, profile_uuid, json.dumps(definition), timestamp(store.now())),
        )
    return profile_uuid


def profile_get(store: SimStore, server_id: int, profile_uuid: str) -> dict[str, Any] | None:
    row = store.query_one(
        "SELECT definition FROM profile WHERE mdm_server_id = ? AND profile_uuid = ?",
        (server_id, profile_uuid),
    )
    return {**json.loads(row["definition"]), "profile_uuid": profile_uuid} if row else None


def profiles_of_server(store: SimStore, server_id: int) -> list[str]:
    rows = store.query("SELECT profile_uuid FROM profile WHERE mdm_server_id = ?", (server_id,))
    return [row[0] for row in rows]


def profile_set(store: SimStore, server_id: int, serials: list[str], profile_uuid: str) -> None:
    """Assign a profile to devices (or clear it when `profile_uuid` is empty)."""
    now = timestamp(store.now())
    status, assigned_at = ("assigned", now) if profile_uuid else ("removed", None)
    with store.transaction() as connection:
        connection.executemany(
            "UPDATE device SET profile_uuid = ?, profile_status = ?, profile_assign_time = ?,"
            " profile_push_time = NULL WHERE mdm_server_id = ? AND serial_number = ?",
            ((profile_uuid, status, assigned_at, server_id, serial) for serial in serials),
        )
        _events_log(connection, server_id, serials, "modified", now)
