"""The API as a script calls it, every response checked against the OpenAPI document.

Shared by the API tests (the `api` fixture of conftest.py); not a test module itself.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from django.test import Client
from django.urls import resolve
from jsonschema import Draft202012Validator

from dep_accounts.api.openapi import OPENAPI


def operation_response(method: str, path: str, status: int) -> dict | None:
    """The OpenAPI response object documented for this request, or None for a 405."""
    route = resolve(urlsplit(path).path).route
    template = "/" + re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", route.removeprefix("api/v1/"))
    operation = OPENAPI["paths"][template].get(method.lower())
    if operation is None:
        return None
    documented = operation["responses"].get(str(status))
    assert documented is not None, f"{method} {template}: status {status} is not documented"
    if "$ref" in documented:
        documented = OPENAPI["components"]["responses"][documented["$ref"].rsplit("/", 1)[1]]
    return documented


def schema_validator(schema: dict) -> Draft202012Validator:
    return Draft202012Validator(
        {"components": OPENAPI["components"], **schema},
        format_checker=Draft202012Validator.FORMAT_CHECKER,
    )


def response_check(method: str, path: str, response) -> None:
    """The response is what the OpenAPI document says this path answers with this status."""
    documented = operation_response(method, path, response.status_code)
    content_type = response["Content-Type"].split(";")[0]
    if documented is None:
        assert response.status_code == 405, f"{method} {path} is not documented"
        schema = {"$ref": "#/components/schemas/Error"}
    else:
        assert content_type in documented["content"], f"{method} {path}: {content_type}"
        schema = documented["content"][content_type]["schema"]
    if content_type == "application/json":
        schema_validator(schema).validate(response.json())


@dataclass
class API:
    """A script's HTTP client: every response is checked against the OpenAPI document."""

    client: Client
    seen: list[tuple[str, str, object]] = field(default_factory=list)

    def request(self, method: str, path: str, *, key: str | None = None, **kwargs):
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        response = getattr(self.client, method.lower())(path, headers=headers, **kwargs)
        self.seen.append((method, path, response))
        return response

    def get(self, path: str, *, key: str | None = None, **params):
        return self.request("GET", path, key=key, data=params)

    def post(self, path: str, *, key: str | None = None, **kwargs):
        return self.request("POST", path, key=key, **kwargs)
