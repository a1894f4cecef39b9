"""Device cursors: opaque to clients, signed so a forged or foreign one is INVALID_CURSOR.

A cursor is unpadded URL-safe base64 of `server_id:kind:device_id:event_seq:issued_ms:signature`.
kind "f" is a fetch in progress (device_id is the last device sent); kind "s" is for
/devices/sync (event_seq is the last change sent). A finished fetch hands out an "s" cursor
whose event_seq is where the fetch began, so the sync replays what changed meanwhile.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from dataclasses import dataclass
from datetime import UTC, datetime

FETCH = "f"
SYNC = "s"


class CursorInvalid(Exception):
    """Not a cursor this simulator issued for this MDM server."""


@dataclass(frozen=True)
class Cursor:
    server_id: int
    kind: str
    device_id: int
    event_seq: int
    issued_at: datetime


def cursor_encode(cursor: Cursor, secret: bytes) -> str:
    issued_ms = int(cursor.issued_at.timestamp() * 1000)
    body = f"{cursor.server_id}:{cursor.kind}:{cursor.device_id}:{cursor.event_seq}:{issued_ms}"
    signature = hmac.new(secret, body.encode(), hashlib.sha256).hexdigest()[:16]
    return base64.urlsafe_b64encode(f"{body}:{signature}".encode()).decode().rstrip("=")


def cursor_decode(text: str, secret: bytes, *, server_id: int) -> Cursor:
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode()
        body, signature = raw.rsplit(":", 1)
        cursor_server, kind, device_id, event_seq, issued_ms = body.split(":")
        expected = hmac.new(secret, body.encode(), hashlib.sha256).hexdigest()[:16]
        if not hmac.compare_digest(signature, expected) or kind not in (FETCH, SYNC):
            raise CursorInvalid
        cursor = Cursor(
            int(cursor_server),
            kind,
            int(device_id),
            int(event_seq),
            datetime.fromtimestamp(int(issued_ms) / 1000, UTC),
        )
    except (ValueError, UnicodeDecodeError, binascii.Error) as error:
        raise CursorInvalid from error
    if cursor.server_id != server_id:
        raise CursorInvalid
    return cursor
