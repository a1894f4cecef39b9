"""The OpenAPI operations of content tokens and of every Apple credential; openapi.py merges
them into the document, with the schemas derived from credential_representations.py."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from dep_accounts.api.credential_representations import (
    ContentTokenDetail,
    ContentTokenEntry,
    ContentTokenRefused,
    Credential,
)
from dep_accounts.api.representations import Error, Page, TooLarge

_CONTENT_TOKEN_ID = {
    "name": "content_token_id",
    "in": "path",
    "required": True,
    "description": "The content token's id.",
    "schema": {"type": "integer"},
}
_UPLOAD_PARAMETERS = [
    {
        "name": "take_over",
        "in": "query",
        "description": "Confirm taking the location over from the MDM that manages it now "
        "(also accepted as a multipart form field).",
        "schema": {"type": "boolean", "default": False},
    },
    {
        "name": "apple_id",
        "in": "query",
        "description": "The Apple Account that downloaded the token, for reminders.",
        "schema": {"type": "string", "maxLength": 254},
    },
]
_VPPTOKEN = {"type": "string", "contentMediaType": "text/plain"}
_UPLOAD_BODY = {
    "required": True,
    "content": {
        "application/octet-stream": {"schema": _VPPTOKEN},
        "text/plain": {"schema": _VPPTOKEN},
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "required": ["token_file"],
                "properties": {
                    "token_file": _VPPTOKEN,
                    "take_over": {"type": "boolean"},
                    "apple_id": {"type": "string", "maxLength": 254},
                },
            }
        },
    },
}


def credential_paths(
    *,
    of: Callable[[Any], dict],
    response: Callable[[str, dict], dict],
    error: Callable[[str], dict],
    page: dict,
    auth_errors: dict,
) -> dict:
    """The paths, built with openapi.py's helpers so their schemas land in its components."""
    refused = {
        "413": response("The file is larger than a content token can be.", of(TooLarge)),
        "415": response("The body is neither a .vpptoken file nor a form.", of(Error)),
        "422": response("The content token was refused; nothing changed.", of(ContentTokenRefused)),
    }
    not_found = response("There is no content token with this id.", of(Error))
    rules = (
        "The same rules and messages as the console: the token must be for this location, "
        "newer than the current one, not expired, and a location another MDM manages is taken "
        "over only with `take_over=true`. Admins only."
    )
    return {
        "/credentials/": {
            "get": {
                "operationId": "credentialsList",
                "summary": "Every Apple credential of every kind, the soonest expiry first",
                "parameters": [page],
                "responses": {
                    "200": response("A page of credentials.", of(Page[Credential])),
                    "400": error("Invalid"),
                    **auth_errors,
                },
            }
        },
        "/content-tokens/": {
            "get": {
                "operationId": "contentTokensList",
                "summary": "Apps and Books content tokens, the soonest expiry first",
                "parameters": [page],
                "responses": {
                    "200": response("A page of content tokens.", of(Page[ContentTokenEntry])),
                    "400": error("Invalid"),
                    **auth_errors,
                },
            },
            "post": {
                "operationId": "contentTokenAdd",
                "summary": "Add the content token of an Apps and Books location",
                "description": rules,
                "parameters": _UPLOAD_PARAMETERS,
                "requestBody": _UPLOAD_BODY,
                "responses": {
                    "201": response("The new content token.", of(ContentTokenDetail)),
                    "400": error("Invalid"),
                    **auth_errors,
                    **refused,
                },
            },
        },
        "/content-tokens/{content_token_id}/": {
            "get": {
                "operationId": "contentTokenRead",
                "summary": "A content token with the history of its uploads",
                "parameters": [_CONTENT_TOKEN_ID],
                "responses": {
                    "200": response("The content token.", of(ContentTokenDetail)),
                    **auth_errors,
                    "404": not_found,
                },
            }
        },
        "/content-tokens/{content_token_id}/token": {
            "post": {
                "operationId": "contentTokenRenew",
                "summary": "Upload a renewed content token for this location",
                "description": rules,
                "parameters": [_CONTENT_TOKEN_ID, *_UPLOAD_PARAMETERS],
                "requestBody": _UPLOAD_BODY,
                "responses": {
                    "200": response("The renewed content token.", of(ContentTokenDetail)),
                    "400": error("Invalid"),
                    **auth_errors,
                    "404": not_found,
                    **refused,
                },
            }
        },
    }
