"""The simulator's request and response values, independent of the HTTP server that carries them."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import HTTP
from html import escape
from typing import Any
from urllib.parse import parse_qs, quote

# As Apple's "Common Error Codes" example spells it.
APPLE_TEXT = "text/plain;Charset=UTF8"


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # names in lower case
    body: bytes
    host: str

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    def json(self) -> Any:
        """The body as JSON (an empty body is an empty object); ValueError if it is not JSON."""
        return json.loads(self.body) if self.body.strip() else {}

    def form(self) -> dict[str, str | bytes]:
        """Form fields: text as str, uploaded files as bytes."""
        content_type = self.header("content-type") or ""
        if content_type.startswith("multipart/form-data"):
            message = BytesParser(policy=HTTP).parsebytes(
                f"Content-Type: {content_type}\r\n\r\n".encode() + self.body
            )
            fields: dict[str, str | bytes] = {}
            for part in message.iter_parts():
                name = part.get_param("name", header="content-disposition")
                decoded = part.get_payload(decode=True)
                payload = decoded if isinstance(decoded, bytes) else b""
                if part.get_filename() is not None:
                    fields[str(name)] = payload
                else:
                    fields[str(name)] = payload.decode("utf-8", "replace")
            return fields
        parsed = parse_qs(self.body.decode("utf-8", "replace"), keep_blank_values=True)
        return {name: values[-1] for name, values in parsed.items()}


@dataclass
class Response:
    status: int
    body: bytes = b""
    content_type: str = APPLE_TEXT
    headers: dict[str, str] = field(default_factory=dict)
    # Close the connection without answering, as a dropped connection would.
    drop: bool = False


def json_response(payload: Any, status: int = 200) -> Response:
    return Response(status, json.dumps(payload).encode(), "application/json;charset=UTF8")


def text_response(status: int, text: str) -> Response:
    return Response(status, text.encode())


def html_response(page: str, status: int = 200) -> Response:
    return Response(status, page.encode(), "text/html; charset=utf-8")


def redirect(location: str, *, notice: str = "", error: str = "") -> Response:
    if notice:
        location += "?notice=" + quote(notice)
    elif error:
        location += "?error=" + quote(error)
    return Response(303, b"", "text/plain", {"Location": location})


def redirect_message_html(request: Request | None) -> str:
    """The notice or error a `redirect` carried, as the paragraph the page shows it in."""
    if request is None:
        return ""
    if request.query.get("error"):
        return f'<p class="error" role="alert">{escape(request.query["error"])}</p>'
    if request.query.get("notice"):
        return f'<p class="notice" role="status">{escape(request.query["notice"])}</p>'
    return ""


def attachment_response(
    content: bytes, content_type: str, filename: str, status: int = 200
) -> Response:
    """A file the browser saves as `filename`, as Apple's portals hand out their downloads."""
    return Response(
        status, content, content_type, {"Content-Disposition": f'attachment; filename="{filename}"'}
    )
