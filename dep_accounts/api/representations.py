"""What the API and `manage.py dep_account|push_certificate --json` print: accounts, the push
certificate, audit events, errors.

Plain dicts of public values: no secret of a server token or key pair ever enters them. Their
TypedDicts are the one description of each shape: api/openapi.py derives its schemas from them.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Generic, Literal, NotRequired, TypedDict, TypeVar, overload

from django.urls import reverse

from dep_accounts.api.json_schema import RFC3339, URI, Schema
from dep_accounts.models import AuditEvent, DEPAccount, PushCertificate, ServerToken
from dep_accounts.services.push import verdict as push_rules
from dep_accounts.services.verdict import Refusal

# Turns a path of the portal into the absolute URL a script can follow.
Absolute = Callable[[str], str]
Item = TypeVar("Item")
BY_THE_PORTAL = "The username; null for the portal itself."


def refusal_codes() -> list[str]:
    """The `code` of every kind of refused upload, found by walking the refusal types."""
    codes: list[str] = []
    kinds: list[type[Refusal]] = [Refusal]
    while kinds:
        kind = kinds.pop(0)
        if kind.reaches_api and kind.code not in codes:
            codes.append(kind.code)
        kinds.extend(kind.__subclasses__())
    return codes


class Error(TypedDict):
    error: Annotated[str, Schema(description="What went wrong and what to do next.")]
    code: Annotated[str, Schema(description="A stable code for scripts.")]


class FoundServer(TypedDict):
    """wrong_server: the MDM server the token belongs to."""

    server_name: str
    server_uuid: str
    org_name: str


class TokenRefused(TypedDict):
    """A server token file that was not taken; nothing was changed."""

    error: str
    code: Annotated[str, Schema(enum=refusal_codes())]
    found: NotRequired[FoundServer]
    existing_account_id: NotRequired[
        Annotated[
            int | None,
            Schema(description="wrong_server: the DEP account already holding that MDM server."),
        ]
    ]
    previous_apple_id: NotRequired[
        Annotated[str, Schema(description="apple_id_changed: the Apple ID of the current token.")]
    ]
    found_apple_id: NotRequired[
        Annotated[
            str,
            Schema(
                description="apple_id_changed: the Apple ID that downloaded this token. Upload "
                "again with apple_id_changed=true if the change is intended."
            ),
        ]
    ]


class TooLarge(TypedDict):
    error: str
    code: Literal["too_large"]
    limit_bytes: int


class AccountLinks(TypedDict):
    self: URI
    public_key: Annotated[
        URI, Schema(description="The public key (.pem) to upload to the MDM server in ABM.")
    ]
    token: Annotated[URI, Schema(description="Where to POST a server token file.")]
    console: URI
    console_edit: URI


class Account(TypedDict):
    id: int
    name: Annotated[str, Schema(description="The display name, else the MDM server's name.")]
    server_name: str
    server_uuid: str | None
    org_name: str
    admin_apple_id: Annotated[
        str, Schema(description="The Apple ID that downloaded the current server token.")
    ]
    state: Annotated[str, Schema(enum=DEPAccount.State.values)]
    state_detail: Annotated[str, Schema(description="Why the account is in this state.")]
    token_expires_at: Annotated[
        RFC3339 | None, Schema(description="Null while awaiting the first token.")
    ]
    days_left: Annotated[
        int | None,
        Schema(description="Calendar days until the token expires, in the portal's time zone."),
    ]
    last_sync_at: RFC3339 | None
    last_sync_result: Annotated[str, Schema(enum=DEPAccount.SyncResult.values)]
    device_count: Annotated[int, Schema(minimum=0)]
    links: AccountLinks


class TokenHistoryEntry(TypedDict):
    """One uploaded server token: its public facts, never its secrets."""

    uploaded_at: RFC3339
    uploaded_by: Annotated[str | None, Schema(description=BY_THE_PORTAL)]
    admin_apple_id: str
    access_token_expiry: RFC3339
    consumer_key_fingerprint: str
    is_current: bool


class AccountDetail(Account):
    token_history: Annotated[list[TokenHistoryEntry], Schema(description="Newest first.")]


class AuditEventEntry(TypedDict):
    id: int
    at: RFC3339
    actor: Annotated[str | None, Schema(description=BY_THE_PORTAL)]
    account_id: int | None
    account_name: str | None
    action: Annotated[str, Schema(enum=AuditEvent.Action.values)]
    action_label: str
    outcome: Annotated[str, Schema(enum=AuditEvent.Outcome.values)]
    message: str
    details: dict


class Page(TypedDict, Generic[Item]):
    count: Annotated[int, Schema(minimum=0)]
    next: URI | None
    previous: URI | None
    results: list[Item]


class SyncQueued(TypedDict):
    status: Literal["queued"]


@overload
def rfc3339(moment: datetime) -> str: ...


@overload
def rfc3339(moment: datetime | None) -> str | None: ...


def rfc3339(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def account_representation(account: DEPAccount, *, absolute: Absolute) -> Account:
    """An account as listed: expiry, state, last sync, and where to see or renew it."""
    return {
        "id": account.pk,
        "name": account.name,
        "server_name": account.server_name,
        "server_uuid": account.server_uuid,
        "org_name": account.org_name,
        "admin_apple_id": account.admin_apple_id,
        "state": account.state,
        "state_detail": account.state_detail,
        "token_expires_at": rfc3339(account.token_expires_at),
        "days_left": account.days_left(),
        "last_sync_at": rfc3339(account.last_sync_at),
        "last_sync_result": account.last_sync_result,
        "device_count": account.device_count,
        "links": {
            "self": absolute(reverse("api:dep_account", args=[account.pk])),
            "public_key": absolute(reverse("api:dep_account_public_key", args=[account.pk])),
            "token": absolute(reverse("api:dep_account_token", args=[account.pk])),
            "console": absolute(reverse("dep_accounts:detail", args=[account.pk])),
            "console_edit": absolute(reverse("dep_accounts:edit", args=[account.pk])),
        },
    }


def server_token_representation(server_token: ServerToken) -> TokenHistoryEntry:
    return {
        "uploaded_at": rfc3339(server_token.uploaded_at),
        "uploaded_by": server_token.uploaded_by.get_username()
        if server_token.uploaded_by
        else None,
        "admin_apple_id": server_token.admin_apple_id,
        "access_token_expiry": rfc3339(server_token.access_token_expiry),
        "consumer_key_fingerprint": server_token.consumer_key_fingerprint,
        "is_current": server_token.is_current,
    }


def account_detail_representation(account: DEPAccount, *, absolute: Absolute) -> AccountDetail:
    """An account with the history of its server tokens, newest first."""
    history = (
        account.server_tokens.select_related("uploaded_by")
        .only(
            "uploaded_at",
            "uploaded_by__username",
            "admin_apple_id",
            "access_token_expiry",
            "consumer_key_fingerprint",
            "is_current",
        )
        .order_by("-uploaded_at", "-id")
    )
    return {
        **account_representation(account, absolute=absolute),
        "token_history": [server_token_representation(t) for t in history],
    }


def audit_event_representation(event: AuditEvent) -> AuditEventEntry:
    return {
        "id": event.pk,
        "at": rfc3339(event.at),
        # No actor: the portal itself (a scheduled task, a command without --user).
        "actor": event.actor_name or None,
        "account_id": event.account_id,
        "account_name": event.account.name if event.account is not None else None,
        "action": event.action,
        "action_label": event.get_action_display(),
        "outcome": event.outcome,
        "message": event.message,
        "details": event.details,
    }


class PushCertificateLinks(TypedDict):
    self: URI
    request: Annotated[
        URI, Schema(description="POST: the signed push-certificate request to upload at Apple.")
    ]
    certificate: Annotated[URI, Schema(description="Where to POST the .pem Apple issues.")]
    console: URI


class PushCertificateHistoryEntry(TypedDict):
    """One uploaded push certificate: public facts only (the key never leaves the portal)."""

    uploaded_at: RFC3339
    uploaded_by: Annotated[str | None, Schema(description=BY_THE_PORTAL)]
    apple_id: str
    topic: str
    serial_number: str
    expires_at: RFC3339
    topic_replaced: Annotated[bool, Schema(description="Replaced the topic, confirmed on purpose.")]
    is_current: bool


class PushCertificateDetail(TypedDict):
    topic: Annotated[
        str, Schema(description="The push topic devices are enrolled with; empty until uploaded.")
    ]
    serial_number: str
    apple_id: Annotated[
        str, Schema(description="The Apple ID used at the Apple Push Certificates Portal.")
    ]
    state: Annotated[str, Schema(enum=PushCertificate.State.values)]
    state_detail: str
    expires_at: RFC3339 | None
    days_left: int | None
    links: PushCertificateLinks
    history: Annotated[list[PushCertificateHistoryEntry], Schema(description="Newest first.")]


class PushCertificateRefused(TypedDict):
    """A push certificate that was not taken; nothing was changed."""

    error: str
    code: Annotated[str, Schema(enum=refusal_codes())]
    current_topic: NotRequired[
        Annotated[str, Schema(description="topic_changed: the topic devices are enrolled with.")]
    ]
    found_topic: NotRequired[
        Annotated[
            str,
            Schema(
                description="topic_changed: this file's topic. Upload again with "
                f"replace_topic={push_rules.REPLACE_WORD} (or this topic) if the replacement "
                "is intended."
            ),
        ]
    ]
    sign_in_apple_id: NotRequired[
        Annotated[str, Schema(description="topic_changed: the Apple ID to renew with.")]
    ]
    previous_apple_id: NotRequired[str]
    found_apple_id: NotRequired[str]


def push_certificate_representation(
    push: PushCertificate, *, absolute: Absolute
) -> PushCertificateDetail:
    """The push certificate with its upload history, newest first."""
    return {
        "topic": push.topic,
        "serial_number": push.serial_number,
        "apple_id": push.apple_id,
        "state": push.state,
        "state_detail": push.state_detail,
        "expires_at": rfc3339(push.expires_at),
        "days_left": push.days_left(),
        "links": {
            "self": absolute(reverse("api:push_certificate")),
            "request": absolute(reverse("api:push_certificate_request")),
            "certificate": absolute(reverse("api:push_certificate_upload")),
            "console": absolute(reverse("dep_accounts:push")),
        },
        "history": [
            {
                "uploaded_at": rfc3339(upload.uploaded_at),
                "uploaded_by": upload.uploaded_by.get_username() if upload.uploaded_by else None,
                "apple_id": upload.apple_id,
                "topic": upload.topic,
                "serial_number": upload.serial_number,
                "expires_at": rfc3339(upload.expires_at),
                "topic_replaced": upload.topic_replaced,
                "is_current": upload.is_current,
            }
            for upload in push.uploads.select_related("uploaded_by")
        ],
    }
