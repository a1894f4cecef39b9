"""The OpenAPI 3.1 description of the API, served at /api/v1/openapi.json.

The operations are written here; the shapes they send are derived from the TypedDicts of
representations.py, the refusal codes from the refusal types. tests/test_api.py validates every
response the tests receive against it, so it cannot drift from what the views send.
"""

from __future__ import annotations

from typing import Any

from dep_accounts.api.json_schema import schema_of
from dep_accounts.api.representations import (
    Account,
    AccountDetail,
    AuditEventEntry,
    Error,
    Page,
    PushCertificateDetail,
    PushCertificateRefused,
    SyncQueued,
    TokenRefused,
    TooLarge,
)
from dep_accounts.models import AuditEvent

# Filled with the schema of each TypedDict the operations below send, as they are built.
SCHEMAS: dict[str, dict] = {}


def _of(shape: Any) -> dict:
    """The schema of a shape from representations.py, by reference into SCHEMAS."""
    return schema_of(shape, SCHEMAS)


def _json_content(schema: dict) -> dict:
    return {"content": {"application/json": {"schema": schema}}}


def _response(description: str, schema: dict) -> dict:
    return {"description": description, **_json_content(schema)}


def _error(description: str) -> dict:
    return {"$ref": f"#/components/responses/{description}"}


RESPONSES = {
    "Unauthenticated": _response(
        "No API token, or one that is revoked or unknown (with `WWW-Authenticate: Bearer`).",
        _of(Error),
    ),
    "Forbidden": _response(
        "The token's user has no role in the portal, or is a viewer and this changes something.",
        _of(Error),
    ),
    "NotFound": _response("There is no DEP account with this id.", _of(Error)),
    "Invalid": _response("A query parameter or the request body is not valid.", _of(Error)),
}

_NEW_ACCOUNT = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 200, "description": "A display name (optional)."}
    },
}
_ACCOUNT_ID = {
    "name": "account_id",
    "in": "path",
    "required": True,
    "description": "The DEP account's id.",
    "schema": {"type": "integer"},
}
_PAGE = {
    "name": "page",
    "in": "query",
    "description": "The page, from 1; 100 items a page.",
    "schema": {"type": "integer", "minimum": 1, "default": 1},
}
_AUTH_ERRORS = {"401": _error("Unauthenticated"), "403": _error("Forbidden")}

PATHS = {
    "/dep-accounts/": {
        "get": {
            "operationId": "depAccountsList",
            "summary": "DEP accounts, the soonest token expiry first",
            "parameters": [_PAGE],
            "responses": {
                "200": _response("A page of DEP accounts.", _of(Page[Account])),
                "400": _error("Invalid"),
                **_AUTH_ERRORS,
            },
        },
        "post": {
            "operationId": "depAccountCreate",
            "summary": "Add a DEP account: its key pair, awaiting the first server token",
            "description": "Download the public key from `links.public_key`, upload it to the "
            "MDM server in Apple Business Manager, download the server token there, and POST "
            "it to `links.token`. Admins only.",
            "requestBody": {
                "required": False,
                "content": {
                    media_type: {"schema": _NEW_ACCOUNT}
                    for media_type in (
                        "application/json",
                        "application/x-www-form-urlencoded",
                        "multipart/form-data",
                    )
                },
            },
            "responses": {
                "201": _response("The new DEP account.", _of(AccountDetail)),
                "400": _error("Invalid"),
                **_AUTH_ERRORS,
            },
        },
    },
    "/dep-accounts/{account_id}/": {
        "get": {
            "operationId": "depAccountRead",
            "summary": "A DEP account with the history of its server tokens",
            "parameters": [_ACCOUNT_ID],
            "responses": {
                "200": _response("The DEP account.", _of(AccountDetail)),
                **_AUTH_ERRORS,
                "404": _error("NotFound"),
            },
        }
    },
    "/dep-accounts/{account_id}/public-key.pem": {
        "get": {
            "operationId": "depAccountPublicKey",
            "summary": "The public key to upload to the MDM server in Apple Business Manager",
            "parameters": [_ACCOUNT_ID],
            "responses": {
                "200": {
                    "description": "A PEM certificate.",
                    "content": {"application/x-pem-file": {"schema": {"type": "string"}}},
                },
                **_AUTH_ERRORS,
                "404": _error("NotFound"),
            },
        }
    },
    "/dep-accounts/{account_id}/token": {
        "post": {
            "operationId": "depAccountTokenUpload",
            "summary": "Upload a server token: the account's first one, or a renewal",
            "description": "The same rules and messages as the console's Edit DEP Account "
            "page: the token must be for this account's MDM server, newer than the current "
            "one, not expired, and downloaded by the same Apple ID unless `apple_id_changed` "
            "is true. Admins only.",
            "parameters": [
                _ACCOUNT_ID,
                {
                    "name": "apple_id_changed",
                    "in": "query",
                    "description": "Confirm that the Apple ID managing the MDM server in ABM "
                    "has changed (also accepted as a multipart form field).",
                    "schema": {"type": "boolean", "default": False},
                },
            ],
            "requestBody": {
                "required": True,
                "content": {
                    "application/pkcs7-mime": {
                        "schema": {"type": "string", "contentMediaType": "application/pkcs7-mime"}
                    },
                    "application/octet-stream": {
                        "schema": {"type": "string", "contentMediaType": "application/pkcs7-mime"}
                    },
                    "multipart/form-data": {
                        "schema": {
                            "type": "object",
                            "required": ["token_file"],
                            "properties": {
                                "token_file": {
                                    "type": "string",
                                    "contentMediaType": "application/pkcs7-mime",
                                },
                                "apple_id_changed": {"type": "boolean"},
                            },
                        }
                    },
                },
            },
            "responses": {
                "200": _response("The token was taken: the updated account.", _of(AccountDetail)),
                **_AUTH_ERRORS,
                "404": _error("NotFound"),
                "400": _error("Invalid"),
                "413": _response("The file is larger than a server token can be.", _of(TooLarge)),
                "415": _response("The body is neither a .p7m file nor a form.", _of(Error)),
                "422": _response("The token was refused; nothing changed.", _of(TokenRefused)),
            },
        }
    },
    "/dep-accounts/{account_id}/sync": {
        "post": {
            "operationId": "depAccountSync",
            "summary": "Start a sync of the account's devices with Apple",
            "parameters": [_ACCOUNT_ID],
            "responses": {
                "202": _response("The sync is queued.", _of(SyncQueued)),
                **_AUTH_ERRORS,
                "404": _error("NotFound"),
                "409": _response(
                    "The account cannot sync now (licence, token state); the message says why.",
                    _of(Error),
                ),
            },
        }
    },
    "/push-certificate/": {
        "get": {
            "operationId": "pushCertificateRead",
            "summary": "The MDM push (APNs) certificate with the history of its uploads",
            "responses": {
                "200": _response("The push certificate.", _of(PushCertificateDetail)),
                **_AUTH_ERRORS,
                "404": _response("No push certificate was requested yet.", _of(Error)),
            },
        }
    },
    "/push-certificate/request": {
        "post": {
            "operationId": "pushCertificateRequest",
            "summary": "The signed push-certificate request to upload at Apple",
            "description": "The portal's key and CSR are made on the first call and kept; the "
            "request is signed with the MDM vendor certificate. Upload it at the Apple Push "
            "Certificates Portal (Renew on the current certificate). Admins only.",
            "responses": {
                "200": {
                    "description": "Base64 of Apple's plist (PushCertRequestCSR, "
                    "PushCertCertificateChain, PushCertSignature).",
                    "content": {"application/octet-stream": {"schema": {"type": "string"}}},
                },
                **_AUTH_ERRORS,
                "409": _response("No usable MDM vendor certificate is configured.", _of(Error)),
            },
        }
    },
    "/push-certificate/certificate": {
        "post": {
            "operationId": "pushCertificateUpload",
            "summary": "Upload the push certificate Apple issued: the first one, or a renewal",
            "description": "The same rules and messages as the console's Edit APNs Certificate "
            "page: issued for the portal's key, not expired, not older than the current one, "
            "with the current topic (unless `replace_topic` confirms it) and by the same Apple "
            "ID (unless `apple_id_changed`). Admins only.",
            "parameters": [
                {
                    "name": name,
                    "in": "query",
                    "description": description + " (also accepted as a multipart form field).",
                    "schema": schema,
                }
                for name, description, schema in (
                    (
                        "apple_id",
                        "The Apple ID used at the Apple Push Certificates Portal; required "
                        "for the first certificate",
                        {"type": "string", "format": "email"},
                    ),
                    (
                        "apple_id_changed",
                        "Confirm that another Apple ID now manages the certificate",
                        {"type": "boolean", "default": False},
                    ),
                    (
                        "replace_topic",
                        "Replace the topic on purpose: REPLACE or the new topic",
                        {"type": "string"},
                    ),
                )
            ],
            "requestBody": {
                "required": True,
                "content": {
                    "application/x-pem-file": {"schema": {"type": "string"}},
                    "application/octet-stream": {"schema": {"type": "string"}},
                    "multipart/form-data": {
                        "schema": {
                            "type": "object",
                            "required": ["certificate_file"],
                            "properties": {
                                "certificate_file": {"type": "string"},
                                "apple_id": {"type": "string"},
                                "apple_id_changed": {"type": "boolean"},
                                "replace_topic": {"type": "string"},
                            },
                        }
                    },
                },
            },
            "responses": {
                "200": _response("The certificate was taken.", _of(PushCertificateDetail)),
                **_AUTH_ERRORS,
                "413": _response("The file is larger than a certificate can be.", _of(TooLarge)),
                "415": _response("The body is neither a .pem file nor a form.", _of(Error)),
                "422": _response(
                    "The certificate was refused; nothing changed.", _of(PushCertificateRefused)
                ),
            },
        }
    },
    "/audit-log/": {
        "get": {
            "operationId": "auditLogList",
            "summary": "The audit log, newest first",
            "parameters": [
                {
                    "name": "account",
                    "in": "query",
                    "description": "Only the events of this DEP account id.",
                    "schema": {"type": "integer"},
                },
                {
                    "name": "action",
                    "in": "query",
                    "schema": {"type": "string", "enum": AuditEvent.Action.values},
                },
                {
                    "name": "since",
                    "in": "query",
                    "description": "Only events at or after this RFC 3339 date and time.",
                    "schema": {"type": "string", "format": "date-time"},
                },
                _PAGE,
            ],
            "responses": {
                "200": _response("A page of audit events.", _of(Page[AuditEventEntry])),
                "400": _error("Invalid"),
                **_AUTH_ERRORS,
            },
        }
    },
    "/openapi.json": {
        "get": {
            "operationId": "openapi",
            "summary": "This document",
            "security": [],
            "responses": {"200": _response("OpenAPI 3.1", {"type": "object"})},
        }
    },
}

OPENAPI = {
    "openapi": "3.1.0",
    "info": {
        "title": "mdmportal API",
        "version": "1",
        "description": "DEP accounts, server token renewal, sync, the APNs push certificate "
        "and the audit log, for "
        "scripts. Authenticate with an API token created on your page in the portal: "
        "`Authorization: Bearer mdmp_…`. Viewers read; admins also change things. Errors "
        "are JSON: `error` (what to do next) and `code` (stable, for scripts).",
    },
    "servers": [{"url": "/api/v1"}],
    "security": [{"apiToken": []}],
    "paths": PATHS,
    "components": {
        "schemas": SCHEMAS,
        "responses": RESPONSES,
        "securitySchemes": {
            "apiToken": {
                "type": "http",
                "scheme": "bearer",
                "description": "An API token: `mdmp_` and 40 URL-safe characters.",
            }
        },
    },
}
