"""Fuzzing the JSON API's requests through Django's test client: bodies of any JSON, form or
bytes under any content type, mutated server tokens, and query strings of any text. Every
answer is one the OpenAPI document lists (its Error shape for a refusal), never a 500."""

from __future__ import annotations

import json
from urllib.parse import urlencode

import pytest
from django.test import Client
from django.urls import reverse
from hypothesis import given
from hypothesis import strategies as st

from dep_accounts.services.api_tokens import api_token_create
from tests.api_contract import response_check
from tests.fuzzing import bounded, json_values, mutated
from tests.token_corpus import DEEP_JSON

pytestmark = pytest.mark.django_db

CONTENT_TYPES = [
    "application/json",
    "application/json; charset=latin-1",
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=fuzz",
    "application/pkcs7-mime",
    "application/octet-stream",
    "text/plain",
]


@pytest.fixture
def admin_key(admin) -> str:
    return api_token_create(user=admin, name="fuzzing").key


def _checked(method: str, path: str, key: str, **kwargs):
    """The API's answer, checked against the OpenAPI document, in bounded time and memory."""
    headers = {"Authorization": f"Bearer {key}"}
    # generic() sends the body's bytes as they are, whatever charset the content type names.
    response = bounded(
        lambda: Client().generic(method, path, headers=headers, **kwargs), expected=()
    )
    assert response.status_code < 500, response.content[:300]
    response_check(method, path, response)
    return response


names = st.one_of(st.text(max_size=250), json_values)
bodies = st.one_of(
    st.builds(lambda name: json.dumps({"name": name}).encode(), names),
    st.builds(lambda value: json.dumps(value).encode(), json_values),
    st.binary(max_size=512),
    st.text(max_size=300).map(str.encode),
    st.integers(1, 100_000).map(lambda depth: b'{"name":' + b"[" * depth),
    st.just(DEEP_JSON),
)


@given(body=bodies, content_type=st.sampled_from(CONTENT_TYPES))
def test_any_body_for_a_new_account_gets_201_or_a_documented_refusal(admin_key, body, content_type):
    response = _checked(
        "POST", reverse("api:dep_accounts"), admin_key, data=body, content_type=content_type
    )
    assert response.status_code in (201, 400, 415), response.content[:300]


@pytest.fixture
def token_file(abm, dep_account) -> bytes:
    """A good server token for the account, downloaded from applesim's ABM once per test."""
    return abm.token_for(dep_account)


@given(data=st.data(), content_type=st.sampled_from(CONTENT_TYPES))
def test_any_token_upload_gets_an_answer_or_a_documented_refusal(
    admin_key, dep_account, token_file, data, content_type
):
    body = data.draw(st.one_of(mutated(token_file), st.binary(max_size=2048)))
    url = reverse("api:dep_account_token", args=[dep_account.pk])
    _checked("POST", url, admin_key, data=body, content_type=content_type)


queries = st.dictionaries(
    st.sampled_from(["page", "since", "account", "action", "other"]),
    st.text(max_size=40) | st.integers().map(str),
    max_size=4,
)


@given(query=queries, list_name=st.sampled_from(["api:audit_log", "api:dep_accounts"]))
def test_any_query_string_gets_a_page_or_a_documented_refusal(admin_key, query, list_name):
    _checked("GET", f"{reverse(list_name)}?{urlencode(query)}", admin_key)
