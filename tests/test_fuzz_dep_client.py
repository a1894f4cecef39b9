"""Fuzzing the DEP client with Apple's answers, mutated: JSON bodies (random, cut, nested deep,
of the wrong shape) and headers (Retry-After, the session header, content type and encoding),
served over real HTTP by a small scripted server on 127.0.0.1. Whatever Apple answers, the
client returns well-typed dataclasses or raises a DEPError."""

from __future__ import annotations

import dataclasses
import json
import threading
import types
import typing
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dep_accounts.apple import schema
from dep_accounts.apple.client import DEPClient
from dep_accounts.apple.dep_errors import THROTTLE_WAIT_LIMIT, DEPError, ThrottledError
from tests.fuzzing import bounded

Answer = tuple[int, list[tuple[str, bytes]], bytes]
SESSION_OK: Answer = (
    200,
    [("Content-Type", b"application/json;charset=UTF8")],
    b'{"auth_session_token":"s1"}',
)

# What Apple answers when all is well, per client call: the starting point of the mutations.
GOOD_ANSWERS = {
    "account": {
        "server_name": "Springfield MDM", "server_uuid": "677cc8e8-0f6a-4d1f-b9b9-5c3b1f8c3a6e",
        "admin_id": "it.admin@springfield.example", "facilitator_id": "deputy@springfield.example",
        "org_name": "Springfield Schools", "org_email": "it@springfield.example",
        "org_phone": "+1 555 0100", "org_address": "1 Main St", "org_id": "1234567",
        "org_id_hash": "abc", "org_type": "edu", "org_version": "v2",
        "urls": [{"uri": "/server/devices", "http_method": ["POST"],
                  "limit": {"default": 100, "maximum": 1000}}],
    },
    "devices_fetch": {
        "devices": [{"serial_number": "C02XK1JHJG5H", "model": "MacBook Air", "os": "OSX",
                     "device_family": "Mac", "profile_status": "empty",
                     "device_assigned_date": "2026-01-17T11:02:21Z", "op_type": "added",
                     "op_date": "2026-01-17T11:02:21Z", "released_by_replacement": False}],
        "cursor": "MTY4NDU2", "more_to_follow": False, "fetched_until": "2026-01-17T11:02:21Z",
    },
    "device_details": {"devices": {"C02XK1JHJG5H": {"response_status": "SUCCESS", "model": "Mac"}}},
    "profile_define": {"profile_uuid": "88A6E7E1", "devices": {"C02XK1JHJG5H": "SUCCESS"}},
    "profile_get": {"profile_uuid": "88A6E7E1", "profile_name": "Springfield"},
    "profile_assign": {"profile_uuid": "88A6E7E1", "devices": {"C02XK1JHJG5H": "THROTTLED"},
                       "retry_after_seconds": 5},
    "profile_remove": {"devices": {"C02XK1JHJG5H": "SUCCESS"}},
}  # fmt: skip
GOOD_ANSWERS["devices_sync"] = GOOD_ANSWERS["devices_fetch"]
GOOD_ANSWERS["session"] = {"auth_session_token": "s1"}


def _call(client: DEPClient, endpoint: str) -> object:
    serials = ["C02XK1JHJG5H"]
    return {
        "session": lambda: client.account(),
        "account": lambda: client.account(),
        "devices_fetch": lambda: client.devices_fetch(cursor="MTY4"),
        "devices_sync": lambda: client.devices_sync(cursor="MTY4"),
        "device_details": lambda: client.device_details(serials),
        "profile_define": lambda: client.profile_define({"profile_name": "Springfield"}),
        "profile_get": lambda: client.profile_get("88A6E7E1"),
        "profile_assign": lambda: client.profile_assign(profile_uuid="88A6E7E1", serials=serials),
        "profile_remove": lambda: client.profile_remove(serials=serials),
    }[endpoint]()


class ScriptedApple(ThreadingHTTPServer):
    """Answers /session with a session, unless `session_answer` says otherwise, and every
    other request with `answer`: a status, raw header lines and a raw body."""

    daemon_threads = True
    answer = SESSION_OK
    session_answer = SESSION_OK


class _Handler(BaseHTTPRequestHandler):
    server: ScriptedApple

    def _answer(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        path = self.path.split("?")[0]
        status, headers, body = (
            self.server.session_answer if path == "/session" else self.server.answer
        )
        head = [f"HTTP/1.1 {status} Answer".encode(), b"Connection: close"]
        head += [name.encode("latin-1") + b": " + value for name, value in headers]
        if not any(name.lower() in ("content-length", "transfer-encoding") for name, _ in headers):
            head.append(b"Content-Length: " + str(len(body)).encode())
        self.wfile.write(b"\r\n".join(head) + b"\r\n\r\n" + body)
        self.close_connection = True

    do_GET = do_POST = do_PUT = do_DELETE = _answer

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def apple() -> Iterator[ScriptedApple]:
    server = ScriptedApple(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _client(apple: ScriptedApple) -> DEPClient:
    return DEPClient(
        consumer_key="CK_fuzz",
        consumer_secret="CS_fuzz",
        access_token="AT_fuzz",
        access_secret="AS_fuzz",
        base_url=f"http://127.0.0.1:{apple.server_address[1]}",
        timeout=(2, 2),
        max_retry_wait=0.0,
        retry_backoff=0.0,
    )


def _well_typed(value: object, hint: object) -> bool:
    """Whether `value` is what its dataclass field's type hint promises, recursively."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_well_typed(value, arm) for arm in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if origin is tuple:
        arm = typing.get_args(hint)[0]
        return isinstance(value, tuple) and all(_well_typed(v, arm) for v in value)
    if origin is dict:
        key, item = typing.get_args(hint)
        return isinstance(value, dict) and all(
            _well_typed(k, key) and _well_typed(v, item) for k, v in value.items()
        )
    if dataclasses.is_dataclass(hint):
        hints = typing.get_type_hints(hint)
        return isinstance(value, hint) and all(
            _well_typed(getattr(value, f.name), hints[f.name]) for f in dataclasses.fields(hint)
        )
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is typing.Any:
        return True
    return isinstance(value, hint)


RESULT_TYPES = {
    "session": schema.Account,
    "account": schema.Account,
    "devices_fetch": schema.DevicePage,
    "devices_sync": schema.DevicePage,
    "device_details": dict[str, schema.DeviceDetail],
    "profile_define": schema.ProfileDefined,
    "profile_get": dict[str, typing.Any],
    "profile_assign": schema.ProfileAssignment,
    "profile_remove": dict[str, str],
}
assert set(RESULT_TYPES) == set(GOOD_ANSWERS)
ENDPOINTS = st.sampled_from(sorted(GOOD_ANSWERS))

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=20), children, max_size=5)
    ),
    max_leaves=25,
)


@st.composite
def json_mutated(draw: st.DrawFn, value: object) -> object:
    """`value` with one of its parts, at any depth, replaced by any JSON, or dropped."""
    if isinstance(value, dict) and value and draw(st.booleans()):
        key = draw(st.sampled_from(sorted(value)))
        if draw(st.integers(0, 4)) == 0:
            return {k: v for k, v in value.items() if k != key}
        return {**value, key: draw(json_mutated(value[key]))}
    if isinstance(value, list) and value and draw(st.booleans()):
        at = draw(st.integers(0, len(value) - 1))
        return [*value[:at], draw(json_mutated(value[at])), *value[at + 1 :]]
    return draw(json_values)


@st.composite
def bodies(draw: st.DrawFn, endpoint: str) -> bytes:
    kind = draw(st.sampled_from(["mutated", "mutated", "any json", "cut", "deep", "bytes"]))
    good = GOOD_ANSWERS[endpoint]
    if kind == "mutated":
        return json.dumps(draw(json_mutated(good))).encode()
    if kind == "any json":
        return json.dumps(draw(json_values)).encode()
    if kind == "cut":
        text = json.dumps(good).encode()
        return text[: draw(st.integers(0, len(text)))]
    if kind == "deep":
        opener = draw(st.sampled_from([b"[", b'{"devices":', b'{"a":[']))
        return opener * draw(st.integers(1, 100_000))
    return draw(st.binary(max_size=512))


header_values = st.one_of(
    st.sampled_from([b"0", b"1", b"-1", b"99999999999999999999", b"1.5", b"", b"gzip", b"chunked"]),
    st.sampled_from([b"Wed, 21 Oct 2015 07:28:00 GMT", b"Fri, 31 Dec 9999 23:59:59 GMT"]),
    st.binary(max_size=40).filter(lambda v: b"\r" not in v and b"\n" not in v),
)
headers = st.lists(
    st.tuples(
        st.sampled_from(
            [
                "Retry-After",
                "X-ADM-Auth-Session",
                "Content-Type",
                "Content-Encoding",
                "Transfer-Encoding",
                "Content-Length",
                "X-Other",
            ]
        ),
        header_values,
    ),
    max_size=3,
)
statuses = st.sampled_from([200, 200, 200, 400, 401, 403, 404, 429, 500, 503]) | st.integers(
    200, 599
)


def _client_answers(apple: ScriptedApple, endpoint: str, answer: Answer) -> None:
    """Serve `answer` for `endpoint`, call it, and check what the client makes of it."""
    apple.answer, apple.session_answer = (
        (SESSION_OK, answer) if endpoint == "session" else (answer, SESSION_OK)
    )
    client = _client(apple)
    try:
        result = bounded(lambda: _call(client, endpoint), expected=())
    except ThrottledError as throttled:
        assert 0 <= throttled.retry_after <= THROTTLE_WAIT_LIMIT
    except DEPError:
        pass
    else:
        assert _well_typed(result, RESULT_TYPES[endpoint]), result
    finally:
        client.close()


@given(endpoint=ENDPOINTS, data=st.data())
def test_any_answer_from_apple_gets_a_well_typed_result_or_a_dep_error(apple, endpoint, data):
    answer = (data.draw(statuses), data.draw(headers), data.draw(bodies(endpoint)))
    _client_answers(apple, endpoint, answer)


@given(endpoint=ENDPOINTS, data=st.data())
def test_a_mutated_good_answer_gets_a_well_typed_result_or_a_dep_error(apple, endpoint, data):
    body = json.dumps(data.draw(json_mutated(GOOD_ANSWERS[endpoint]))).encode()
    _client_answers(apple, endpoint, (200, [("Content-Type", b"application/json")], body))


def test_the_good_answers_parse(apple):
    apple.session_answer = SESSION_OK
    for endpoint, good in GOOD_ANSWERS.items():
        apple.answer = (
            200,
            [],
            json.dumps(GOOD_ANSWERS["account"] if endpoint == "session" else good).encode(),
        )
        result = _call(_client(apple), endpoint)
        assert _well_typed(result, RESULT_TYPES[endpoint]), endpoint
