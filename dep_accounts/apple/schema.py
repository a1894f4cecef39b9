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


def text_parse(value: object, *, required: bool = False) -> str:
    """One of Apple's strings; absent or null is "" (TypeError when `required`). A number is
    taken as its digits; anything else raises TypeError: the answer is not Apple's shape."""
    if isinstance(value, str) and (value or not required):
        return value
    if value is None and not required:
        return ""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise TypeError(f"expected a string, found {type(value).__name__}")


def count_parse(value: object) -> int | None:
    """A whole number of Apple's that cannot be negative (a page limit, seconds to wait)."""
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"expected a whole number, found {type(value).__name__}")
    return max(value, 0)


def results_parse(raw: object) -> dict[str, str]:
    """Apple's verdict per serial number: SUCCESS, NOT_ACCESSIBLE, FAILED or THROTTLED."""
    if not isinstance(raw, dict):
        raise TypeError(f"expected an object of serial numbers, found {type(raw).__name__}")
    return {serial: text_parse(result, required=True) for serial, result in raw.items()}


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
        serial_number=text_parse(raw["serial_number"], required=True),
        model=text_parse(raw.get("model")),
        description=text_parse(raw.get("description")),
        color=text_parse(raw.get("color")),
        asset_tag=text_parse(raw.get("asset_tag")),
        os=text_parse(raw.get("os")),
        device_family=text_parse(raw.get("device_family")),
        profile_status=text_parse(raw.get("profile_status")),
        profile_uuid=text_parse(raw.get("profile_uuid")),
        profile_assign_time=moment_parse(raw.get("profile_assign_time")),
        profile_push_time=moment_parse(raw.get("profile_push_time")),
        device_assigned_date=moment_parse(raw.get("device_assigned_date")),
        device_assigned_by=text_parse(raw.get("device_assigned_by")),
        op_type=text_parse(raw.get("op_type")),
        op_date=moment_parse(raw.get("op_date")),
        mdm_migration_deadline=moment_parse(raw.get("mdm_migration_deadline")),
        released_by_replacement=flag_parse(raw.get("released_by_replacement")),
    )


def account_parse(raw: dict[str, Any]) -> Account:
    urls = tuple(
        AccountURL(
            uri=text_parse(url["uri"], required=True),
            http_methods=tuple(text_parse(method) for method in url.get("http_method") or ()),
            limit_default=count_parse((url.get("limit") or {}).get("default")),
            limit_maximum=count_parse((url.get("limit") or {}).get("maximum")),
        )
        for url in raw.get("urls") or ()
    )
    text = {
        name: text_parse(raw.get(name))
        for name in (
            "server_name", "admin_id", "facilitator_id", "org_name", "org_email", "org_phone",
            "org_address", "org_id", "org_id_hash", "org_type", "org_version",
        )
    }  # fmt: skip
    server_uuid = text_parse(raw["server_uuid"], required=True)
    return Account(server_uuid=server_uuid, urls=urls, **text)


def page_parse(raw: dict[str, Any]) -> DevicePage:
    return DevicePage(
        devices=tuple(device_parse(device) for device in raw.get("devices") or ()),
        cursor=text_parse(raw.get("cursor")),
        # A boolean in live answers, the string "false" in Apple's documentation.
        more_to_follow=flag_parse(raw.get("more_to_follow")),
        fetched_until=moment_parse(raw.get("fetched_until")),
    )


def profile_defined_parse(raw: dict[str, Any]) -> ProfileDefined:
    return ProfileDefined(
        text_parse(raw["profile_uuid"], required=True), results_parse(raw.get("devices") or {})
    )


def profile_assignment_parse(raw: dict[str, Any], *, profile_uuid: str) -> ProfileAssignment:
    return ProfileAssignment(
        text_parse(raw.get("profile_uuid")) or profile_uuid,
        results_parse(raw["devices"]),
        count_parse(raw.get("retry_after_seconds")),
    )
