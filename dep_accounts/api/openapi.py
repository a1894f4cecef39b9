"""The OpenAPI 3.1 description of the API, served at /api/v1/openapi.json.

tests/test_api.py validates every response the tests receive against it, so it cannot drift
from what the views send.
"""

from __future__ import annotations

from dep_accounts.models import AuditEvent, DEPAccount


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _json_content(schema: dict) -> dict:
    return {"content": {"application/json": {"schema": schema}}}


def _response(description: str, schema: dict) -> dict:
    return {"description": description, **_json_content(schema)}


def _error(description: str) -> dict:
    return {"$ref": f"#/components/responses/{description}"}


_NULLABLE_TIME = {"type": ["string", "null"], "format": "date-time"}

_ACCOUNT_PROPERTIES = {
    "id": {"type": "integer"},
    "name": {"type": "string", "description": "The display name, else the MDM server's name."},
    "server_name": {"type": "string"},
    "server_uuid": {"type": ["string", "null"]},
    "org_name": {"type": "string"},
    "admin_apple_id": {
        "type": "string",
        "description": "The Apple ID that downloaded the current server token.",
    },
    "state": {"type": "string", "enum": DEPAccount.State.values},
    "state_detail": {"type": "string", "description": "Why the account is in this state."},
    "token_expires_at": {**_NULLABLE_TIME, "description": "Null while awaiting the first token."},
    "days_left": {
        "type": ["integer", "null"],
        "description": "Calendar days until the token expires, in the portal's time zone.",
    },
    "last_sync_at": _NULLABLE_TIME,
    "last_sync_result": {"type": "string", "enum": DEPAccount.SyncResult.values},
    "device_count": {"type": "integer", "minimum": 0},
    "links": {
        "type": "object",
        "additionalProperties": False,
        "required": ["self", "public_key", "token", "console", "console_edit"],
        "properties": {
            "self": {"type": "string", "format": "uri"},
            "public_key": {
                "type": "string",
                "format": "uri",
                "description": "The public key (.pem) to upload to the MDM server in ABM.",
            },
            "token": {
                "type": "string",
                "format": "uri",
                "description": "Where to POST a server token file.",
            },
            "console": {"type": "string", "format": "uri"},
            "console_edit": {"type": "string", "format": "uri"},
        },
    },
}


def _page_of(item: str) -> dict:
    return {
        "type": "object",
        "additionalProperties": False,
        "required": ["count", "next", "previous", "results"],
        "properties": {
            "count": {"type": "integer", "minimum": 0},
            "next": {"type": ["string", "null"], "format": "uri"},
            "previous": {"type": ["string", "null"], "format": "uri"},
            "results": {"type": "array", "items": _ref(item)},
        },
    }


SCHEMAS = {
    "Error": {
        "type": "object",
        "required": ["error", "code"],
        "properties": {
            "error": {"type": "string", "description": "What went wrong and what to do next."},
            "code": {"type": "string", "description": "A stable code for scripts."},
        },
    },
    "TokenRefused": {
        "description": "A server token file that was not taken; nothing was changed.",
        "type": "object",
        "additionalProperties": False,
        "required": ["error", "code"],
        "properties": {
            "error": {"type": "string"},
            "code": {
                "type": "string",
                "enum": [
                    "bad_file",
                    "apple_refused",
                    "apple_unreachable",
                    "wrong_server",
                    "apple_id_changed",
                    "older_token",
                    "concurrent_upload",
                    "invalid",
                ],
            },
            "found": {
                "description": "wrong_server: the MDM server the token belongs to.",
                "type": "object",
                "additionalProperties": False,
                "required": ["server_name", "server_uuid", "org_name"],
                "properties": {
                    "server_name": {"type": "string"},
                    "server_uuid": {"type": "string"},
                    "org_name": {"type": "string"},
                },
            },
            "existing_account_id": {
                "type": ["integer", "null"],
                "description": "wrong_server: the DEP account already holding that MDM server.",
            },
            "previous_apple_id": {
                "type": "string",
                "description": "apple_id_changed: the Apple ID of the current token.",
            },
            "found_apple_id": {
                "type": "string",
                "description": "apple_id_changed: the Apple ID that downloaded this token. "
                "Upload again with apple_id_changed=true if the change is intended.",
            },
        },
    },
    "TooLarge": {
        "type": "object",
        "additionalProperties": False,
        "required": ["error", "code", "limit_bytes"],
        "properties": {
            "error": {"type": "string"},
            "code": {"const": "too_large"},
            "limit_bytes": {"type": "integer"},
        },
    },
    "Account": {
        "type": "object",
        "additionalProperties": False,
        "required": list(_ACCOUNT_PROPERTIES),
        "properties": _ACCOUNT_PROPERTIES,
    },
    "ServerToken": {
        "description": "One uploaded server token: its public facts, never its secrets.",
        "type": "object",
        "additionalProperties": False,
        "required": [
            "uploaded_at",
            "uploaded_by",
            "admin_apple_id",
            "access_token_expiry",
            "consumer_key_fingerprint",
            "is_current",
        ],
        "properties": {
            "uploaded_at": {"type": "string", "format": "date-time"},
            "uploaded_by": {
                "type": ["string", "null"],
                "description": "The username; null for the portal itself.",
            },
            "admin_apple_id": {"type": "string"},
            "access_token_expiry": {"type": "string", "format": "date-time"},
            "consumer_key_fingerprint": {"type": "string"},
            "is_current": {"type": "boolean"},
        },
    },
    "AccountDetail": {
        "type": "object",
        "additionalProperties": False,
        "required": [*_ACCOUNT_PROPERTIES, "token_history"],
        "properties": {
            **_ACCOUNT_PROPERTIES,
            "token_history": {
                "type": "array",
                "description": "Newest first.",
                "items": _ref("ServerToken"),
            },
        },
    },
    "AccountPage": _page_of("Account"),
    "AuditEvent": {
        "type": "object",
        "additionalProperties": False,
        "required": [
            "id",
            "at",
            "actor",
            "account_id",
            "account_name",
            "action",
            "action_label",
            "outcome",
            "message",
            "details",
        ],
        "properties": {
            "id": {"type": "integer"},
            "at": {"type": "string", "format": "date-time"},
            "actor": {
                "type": ["string", "null"],
                "description": "The username; null for the portal itself.",
            },
            "account_id": {"type": ["integer", "null"]},
            "account_name": {"type": ["string", "null"]},
            "action": {"type": "string", "enum": AuditEvent.Action.values},
            "action_label": {"type": "string"},
            "outcome": {"type": "string", "enum": AuditEvent.Outcome.values},
            "message": {"type": "string"},
            "details": {"type": "object"},
        },
    },
    "AuditEventPage": _page_of("AuditEvent"),
    "SyncQueued": {
        "type": "object",
        "additionalProperties": False,
        "required": ["status"],
        "properties": {"status": {"const": "queued"}},
    },
}

RESPONSES = {
    "Unauthenticated": _response(
        "No API token, or one that is revoked or unknown (with `WWW-Authenticate: Bearer`).",
        _ref("Error"),
    ),
    "Forbidden": _response(
        "The token's user has no role in the portal, or is a viewer and this changes something.",
        _ref("Error"),
    ),
    "NotFound": _response("There is no DEP account with this id.", _ref("Error")),
    "Invalid": _response("A query parameter or the request body is not valid.", _ref("Error")),
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
                "200": _response("A page of DEP accounts.", _ref("AccountPage")),
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
                "201": _response("The new DEP account.", _ref("AccountDetail")),
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
                "200": _response("The DEP account.", _ref("AccountDetail")),
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
                "200": _response(
                    "The token was taken: the updated account.", _ref("AccountDetail")
                ),
                **_AUTH_ERRORS,
                "404": _error("NotFound"),
                "413": _response(
                    "The file is larger than a server token can be.", _ref("TooLarge")
                ),
                "415": _response("The body is neither a .p7m file nor a form.", _ref("Error")),
                "422": _response("The token was refused; nothing changed.", _ref("TokenRefused")),
            },
        }
    },
    "/dep-accounts/{account_id}/sync": {
        "post": {
            "operationId": "depAccountSync",
            "summary": "Start a sync of the account's devices with Apple",
            "parameters": [_ACCOUNT_ID],
            "responses": {
                "202": _response("The sync is queued.", _ref("SyncQueued")),
                **_AUTH_ERRORS,
                "404": _error("NotFound"),
                "409": _response(
                    "The account cannot sync now (licence, token state); the message says why.",
                    _ref("Error"),
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
                "200": _response("A page of audit events.", _ref("AuditEventPage")),
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
        "description": "DEP accounts, server token renewal, sync and the audit log, for "
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
