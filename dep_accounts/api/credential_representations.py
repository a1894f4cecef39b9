"""What the API prints for content tokens and for every Apple credential, and their refusals.

Plain dicts of public values: no content token ever enters them. As in representations.py,
the TypedDicts are the one description of each shape for api/openapi.py.
"""

from __future__ import annotations

from typing import Annotated, NotRequired, TypedDict

from django.urls import reverse

from dep_accounts.api.json_schema import RFC3339, URI, Schema
from dep_accounts.api.representations import BY_THE_PORTAL, Absolute, refusal_codes, rfc3339
from dep_accounts.models import ContentToken, ContentTokenUpload
from dep_accounts.services.content_tokens import verdict as content_token_verdict
from dep_accounts.services.credentials import KIND_LABELS, CredentialRow
from dep_accounts.services.verdict import Refusal


class FoundLocation(TypedDict):
    """wrong_location: the Apps and Books location the content token belongs to."""

    location_name: str
    location_uid: str
    country: str


class ContentTokenRefused(TypedDict):
    """A content token file that was not taken; nothing was changed."""

    error: str
    code: Annotated[str, Schema(enum=refusal_codes())]
    found: NotRequired[FoundLocation]
    existing_content_token_id: NotRequired[
        Annotated[
            int | None,
            Schema(description="wrong_location: the content token already holding it."),
        ]
    ]
    other_mdm: NotRequired[
        Annotated[
            str,
            Schema(
                description="another_mdm: the MDM that manages the location. Upload again "
                "with take_over=true to take it over."
            ),
        ]
    ]


class ConsoleLinks(TypedDict):
    console: URI
    console_edit: URI


class Credential(TypedDict):
    """One yearly Apple credential, whatever its kind."""

    kind: Annotated[str, Schema(enum=list(KIND_LABELS))]
    kind_label: str
    name: str
    expires_at: Annotated[RFC3339 | None, Schema(description="Null while awaiting one.")]
    days_left: int | None
    state: str
    state_label: str
    apple_id: str
    links: ConsoleLinks


def credential_representation(row: CredentialRow, *, absolute: Absolute) -> Credential:
    return {
        "kind": row.kind,
        "kind_label": row.kind_label,
        "name": row.name,
        "expires_at": rfc3339(row.expires_at),
        "days_left": row.days_left,
        "state": row.state,
        "state_label": row.state_label,
        "apple_id": row.apple_id,
        "links": {"console": absolute(row.detail_url), "console_edit": absolute(row.edit_url)},
    }


class ContentTokenLinks(TypedDict):
    self: URI
    token: Annotated[URI, Schema(description="Where to POST a renewed .vpptoken file.")]
    console: URI
    console_edit: URI


class ContentTokenEntry(TypedDict):
    id: int
    location_name: str
    location_uid: str
    country: str
    org_name: str
    apple_id: Annotated[str, Schema(description="Who downloaded it, as the admin said.")]
    state: Annotated[str, Schema(enum=ContentToken.State.values)]
    state_detail: str
    expires_at: RFC3339
    days_left: int
    managed_by: Annotated[str, Schema(description="The MDM Apple says manages the location.")]
    asset_count: int | None
    licences_total: int | None
    licences_assigned: int | None
    licences_available: int | None
    checked_at: RFC3339 | None
    links: ContentTokenLinks


class ContentTokenUploadEntry(TypedDict):
    """One uploaded .vpptoken: its public facts, never the token."""

    uploaded_at: RFC3339
    uploaded_by: Annotated[str | None, Schema(description=BY_THE_PORTAL)]
    expires_at: RFC3339
    fingerprint: str
    apple_id: str
    taken_over_from: str


class ContentTokenDetail(ContentTokenEntry):
    uploads: Annotated[list[ContentTokenUploadEntry], Schema(description="Newest first.")]


def content_token_representation(
    content_token: ContentToken, *, absolute: Absolute
) -> ContentTokenEntry:
    pk = content_token.pk
    return {
        "id": pk,
        "location_name": content_token.location_name,
        "location_uid": content_token.location_uid,
        "country": content_token.country,
        "org_name": content_token.org_name,
        "apple_id": content_token.apple_id,
        "state": content_token.state,
        "state_detail": content_token.state_detail,
        "expires_at": rfc3339(content_token.expires_at),
        "days_left": content_token.days_left(),
        "managed_by": content_token.mdm_name,
        "asset_count": content_token.asset_count,
        "licences_total": content_token.licences_total,
        "licences_assigned": content_token.licences_assigned,
        "licences_available": content_token.licences_available,
        "checked_at": rfc3339(content_token.checked_at),
        "links": {
            "self": absolute(reverse("api:content_token", args=[pk])),
            "token": absolute(reverse("api:content_token_token", args=[pk])),
            "console": absolute(content_token.get_absolute_url()),
            "console_edit": absolute(reverse("dep_accounts:content_token_edit", args=[pk])),
        },
    }


def _upload_representation(upload: ContentTokenUpload) -> ContentTokenUploadEntry:
    return {
        "uploaded_at": rfc3339(upload.uploaded_at),
        "uploaded_by": upload.uploaded_by.get_username() if upload.uploaded_by else None,
        "expires_at": rfc3339(upload.expires_at),
        "fingerprint": upload.fingerprint,
        "apple_id": upload.apple_id,
        "taken_over_from": upload.taken_over_from,
    }


def content_token_detail_representation(
    content_token: ContentToken, *, absolute: Absolute
) -> ContentTokenDetail:
    uploads = content_token.uploads.select_related("uploaded_by")
    return {
        **content_token_representation(content_token, absolute=absolute),
        "uploads": [_upload_representation(u) for u in uploads],
    }


def content_token_refusal_details(exc: Refusal) -> dict:
    """What a script needs to act on a refused content token, beyond the message."""
    if isinstance(exc, content_token_verdict.WrongLocationError):
        return {
            "found": {
                "location_name": exc.found.location_name,
                "location_uid": exc.found.uid,
                "country": exc.found.country,
            },
            "existing_content_token_id": exc.existing.pk if exc.existing else None,
        }
    if isinstance(exc, content_token_verdict.AnotherMDMError):
        return {"other_mdm": exc.mdm_name}
    return {}
