"""What Apple's DEP web service answers, as frozen dataclasses, and the parsing of its JSON."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any


@dataclass(frozen=True)
class AccountURL:
    uri: str
    http_methods: tuple[str, ...]
    limit_default: int | None
    limit_maximum: int | None


@dataclass(frozen=True)
class Account:
    server_name: str
    server_uuid: str
    admin_id: str
    facilitator_id: str
    org_name: str
    org_email: str
    org_phone: str
    org_address: str
    org_id: str
    org_id_hash: str
    org_type: str
    org_version: str
    urls: tuple[AccountURL, ...]

    def limit_maximum(self, uri: str) -> int | None:
        """The largest page Apple allows for an endpoint, if it says."""
        return next((url.limit_maximum for url in self.urls if url.uri == uri), None)


@dataclass(frozen=True)
class Device:
    serial_number: str
    model: str = ""
    description: str = ""
    color: str = ""
    asset_tag: str = ""
    os: str = ""
    device_family: str = ""
    profile_status: str = ""
    profile_uuid: str = ""
    profile_assign_time: datetime | None = None
    profile_push_time: datetime | None = None
    device_assigned_date: datetime | None = None
    device_assigned_by: str = ""
    # Only in /devices/sync answers: "added", "modified" or "deleted", and when.
    op_type: str = ""
    op_date: datetime | None = None
    # Protocol v8+: the device is being migrated to another MDM server by this date, and the
    # admin must act before then (iOS/macOS 26 MDM migration).
    mdm_migration_deadline: datetime | None = None
    # On a deleted record: Apple released the device because a replacement took its place.
    released_by_replacement: bool = False


@dataclass(frozen=True)
class DevicePage:
    devices: tuple[Device, ...]
    cursor: str
    more_to_follow: bool
    fetched_until: datetime | None


@dataclass(frozen=True)
class DeviceDetail:
    serial_number: str
    response_status: str  # SUCCESS, NOT_ACCESSIBLE, or NOT_FOUND (Apple's older wording)
    device: Device | None


@dataclass(frozen=True)
class ProfileDefined:
    profile_uuid: str
    devices: dict[str, str]  # serial -> SUCCESS, NOT_ACCESSIBLE, FAILED or THROTTLED


@dataclass(frozen=True)
class ProfileAssignment:
    profile_uuid: str
    devices: dict[str, str]  # serial -> SUCCESS, NOT_ACCESSIBLE, FAILED or THROTTLED
    retry_after_seconds: int | None

    @property
    def throttled(self) -> list[str]:
        return [serial for serial, result in self.devices.items() if result == "THROTTLED"]


def moment_parse(value: object) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def flag_parse(value: object) -> bool:
    """A JSON boolean, or the string "true"/"false" that Apple's own documentation shows."""
    if isinstance(value, str):
        return value.strip().lower() == "true"
    return value is True


def device_parse(raw: dict[str, Any]) -> Device:
    return Device(
        serial_number=raw["serial_number"],
        model=raw.get("model") or "",
        description=raw.get("description") or "",
        color=raw.get("color") or "",
        asset_tag=raw.get("asset_tag") or "",
        os=raw.get("os") or "",
        device_family=raw.get("device_family") or "",
        profile_status=raw.get("profile_status") or "",
        profile_uuid=raw.get("profile_uuid") or "",
        profile_assign_time=moment_parse(raw.get("profile_assign_time")),
        profile_push_time=moment_parse(raw.get("profile_push_time")),
        device_assigned_date=moment_parse(raw.get("device_assigned_date")),
        device_assigned_by=raw.get("device_assigned_by") or "",
        op_type=raw.get("op_type") or "",
        op_date=moment_parse(raw.get("op_date")),
        mdm_migration_deadline=moment_parse(raw.get("mdm_migration_deadline")),
        released_by_replacement=flag_parse(raw.get("released_by_replacement")),
    )


def account_parse(raw: dict[str, Any]) -> Account:
    urls = tuple(
        AccountURL(
            uri=url["uri"],
            http_methods=tuple(url.get("http_method") or ()),
            limit_default=(url.get("limit") or {}).get("default"),
            limit_maximum=(url.get("limit") or {}).get("maximum"),
        )
        for url in raw.get("urls") or ()
    )
    text = {
        name: str(raw.get(name) or "")
        for name in (
            "server_name", "admin_id", "facilitator_id", "org_name", "org_email", "org_phone",
            "org_address", "org_id", "org_id_hash", "org_type", "org_version",
        )
    }  # fmt: skip
    return Account(server_uuid=raw["server_uuid"], urls=urls, **text)


def page_parse(raw: dict[str, Any]) -> DevicePage:
    return DevicePage(
        devices=tuple(device_parse(device) for device in raw.get("devices") or ()),
        cursor=raw.get("cursor") or "",
        # A boolean in live answers, the string "false" in Apple's documentation.
        more_to_follow=flag_parse(raw.get("more_to_follow")),
        fetched_until=moment_parse(raw.get("fetched_until")),
    )
