"""The API's views: as short as the console's, calling the same services."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.paginator import EmptyPage, PageNotAnInteger, Paginator
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import reverse
from django.utils.http import content_disposition_header
from django.views.decorators.debug import sensitive_variables
from django.views.decorators.http import require_GET

from dep_accounts.api.auth import APIError, api_endpoint
from dep_accounts.api.openapi import OPENAPI
from dep_accounts.api.representations import (
    account_detail_representation,
    account_representation,
    audit_event_representation,
)
from dep_accounts.models import AuditEvent, DEPAccount, KeyPair
from dep_accounts.plain_text import name_validate
from dep_accounts.roles import can_manage, can_view
from dep_accounts.selectors import audit_events, dep_accounts_list
from dep_accounts.services.accounts import account_create
from dep_accounts.services.intake import TokenUpload, token_intake
from dep_accounts.services.sync import SyncUnavailableError
from dep_accounts.services.sync_requests import account_sync_request
from dep_accounts.services.verdict import (
    AppleIDChangedError,
    Confirmations,
    Refusal,
    TokenTooLargeError,
    WrongServerError,
)
from dep_accounts.users import SignedInRequest

PER_PAGE = 100
TOKEN_CONTENT_TYPES = {"application/pkcs7-mime", "application/octet-stream"}
TRUE_VALUES = {"true", "1", "yes", "on"}


def json_answer(body: Mapping[str, object], status: int = 200) -> JsonResponse:
    return JsonResponse(body, status=status, json_dumps_params={"ensure_ascii": False})


# The largest id a database column holds; SQLite raises OverflowError past it.
ID_MAX = 2**63 - 1


def _account_get(account_id: int) -> DEPAccount:
    account = DEPAccount.objects.filter(pk=account_id).first() if account_id <= ID_MAX else None
    if account is None:
        raise APIError(404, "not_found", f"There is no DEP account with id {account_id}.")
    return account


def page_of(request: HttpRequest, items, represent) -> dict:
    """One page of `items`, with the URLs of the pages before and after it."""
    try:
        page = Paginator(items, PER_PAGE).page(request.GET.get("page", 1))
    except (PageNotAnInteger, EmptyPage) as exc:
        raise APIError(400, "invalid", f"No such page: {exc}") from exc

    def link(number: int) -> str:
        query = request.GET.copy()
        query["page"] = str(number)
        return request.build_absolute_uri(f"{request.path}?{query.urlencode()}")

    return {
        "count": page.paginator.count,
        "next": link(page.next_page_number()) if page.has_next() else None,
        "previous": link(page.previous_page_number()) if page.has_previous() else None,
        "results": [represent(item) for item in page.object_list],
    }


@api_endpoint(GET=can_view, POST=can_manage)
def dep_accounts(request: SignedInRequest) -> JsonResponse:
    if request.method == "POST":
        return _account_create(request)
    absolute = request.build_absolute_uri
    accounts = dep_accounts_list()
    return json_answer(
        page_of(request, accounts, lambda a: account_representation(a, absolute=absolute))
    )


def _account_create(request: SignedInRequest) -> JsonResponse:
    if request.content_type == "application/json":
        try:
            body = json.loads(request.body or b"{}")
        except ValueError as exc:
            raise APIError(400, "invalid", "The request body is not JSON.") from exc
        except RecursionError as exc:
            raise APIError(
                400, "invalid", 'The request body nests too deeply: send {"name": "…"}.'
            ) from exc
    else:
        body = request.POST
    name = body.get("name", "") if hasattr(body, "get") else None
    if not isinstance(name, str) or len(name) > 200:
        raise APIError(400, "invalid", "“name” must be a text of at most 200 characters.")
    try:
        name_validate(name)
    except ValidationError as exc:
        raise APIError(400, "invalid", f"“name”: {exc.messages[0]}") from exc
    account = account_create(actor=request.user, display_name=name.strip())
    response = json_answer(
        account_detail_representation(account, absolute=request.build_absolute_uri), status=201
    )
    response["Location"] = request.build_absolute_uri(reverse("api:dep_account", args=[account.pk]))
    return response


@api_endpoint(GET=can_view)
def dep_account(request: HttpRequest, account_id: int) -> JsonResponse:
    account = _account_get(account_id)
    return json_answer(account_detail_representation(account, absolute=request.build_absolute_uri))


@api_endpoint(GET=can_view)
def dep_account_public_key(request: HttpRequest, account_id: int) -> HttpResponse:
    key_pairs = KeyPair.objects.only("certificate_pem").filter(account=account_id)
    key_pair = key_pairs.first() if account_id <= ID_MAX else None
    if key_pair is None:
        raise APIError(404, "not_found", f"There is no DEP account with id {account_id}.")
    response = HttpResponse(key_pair.certificate_pem, content_type="application/x-pem-file")
    response["Content-Disposition"] = content_disposition_header(
        as_attachment=True, filename=f"mdmportal_{account_id}_public_key.pem"
    )
    return response


@api_endpoint(POST=can_manage)
@sensitive_variables("token_file")
def dep_account_token(request: SignedInRequest, account_id: int) -> JsonResponse:
    account = _account_get(account_id)
    upload = _token_file(request)
    apple_id_changed = (
        request.GET.get("apple_id_changed") or request.POST.get("apple_id_changed") or ""
    )
    confirmed = Confirmations(apple_id_changed=apple_id_changed.lower() in TRUE_VALUES)
    try:
        token_intake(account=account, upload=upload, actor=request.user, confirmations=confirmed)
    except TokenTooLargeError as exc:
        limit = settings.DEP_TOKEN_MAX_BYTES
        raise APIError(413, exc.code, exc.message, limit_bytes=limit) from exc
    except Refusal as exc:
        raise APIError(422, exc.code, exc.message, **_refusal_details(exc)) from exc
    return json_answer(account_detail_representation(account, absolute=request.build_absolute_uri))


def _token_file(request: HttpRequest) -> TokenUpload:
    """The uploaded .p7m, as a multipart field or the whole body; its size is the intake's."""
    if request.content_type == "multipart/form-data":
        upload = request.FILES.get("token_file")
    elif request.content_type in TOKEN_CONTENT_TYPES:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
        # Not read at all when it declares more than a server token can be.
        body = b"" if declared > settings.DEP_TOKEN_MAX_BYTES else request.body
        upload = _RawUpload(body, size=max(declared, len(body)))
    else:
        raise APIError(
            415,
            "unsupported_media_type",
            "Send the .p7m file as the request body (Content-Type: application/pkcs7-mime) or "
            "as the field “token_file” of a multipart/form-data request.",
        )
    if upload is None:
        raise APIError(422, "bad_file", "Choose the .p7m file you downloaded from ABM.")
    # django-stubs types UploadedFile's name and size as optional (a file built by hand may lack
    # them); the multipart parser and _RawUpload always set both.
    return upload  # type: ignore[return-value]


class _RawUpload(SimpleUploadedFile):
    """A request body taken as the file ABM saved, under the name ABM gives it."""

    def __init__(self, content: bytes, *, size: int) -> None:
        super().__init__("smime.p7m", content, content_type="application/pkcs7-mime")
        self.size = size


def _refusal_details(exc: Refusal) -> dict:
    """What a script needs to act on a refusal, beyond the message."""
    if isinstance(exc, WrongServerError):
        found = exc.found
        existing = exc.existing
        return {
            "found": {
                "server_name": found.server_name,
                "server_uuid": found.server_uuid,
                "org_name": found.org_name,
            },
            "existing_account_id": existing.pk if existing is not None else None,
        }
    if isinstance(exc, AppleIDChangedError):
        return {"previous_apple_id": exc.previous, "found_apple_id": exc.found}
    return {}


@api_endpoint(POST=can_manage)
def dep_account_sync(request: SignedInRequest, account_id: int) -> JsonResponse:
    account = _account_get(account_id)
    try:
        account_sync_request(account=account, actor=request.user)
    except SyncUnavailableError as exc:
        raise APIError(409, "sync_unavailable", exc.message) from exc
    return json_answer({"status": "queued"}, status=202)


@api_endpoint(GET=can_view)
def audit_log(request: HttpRequest) -> JsonResponse:
    account_id = request.GET.get("account", "")
    # isdigit() alone takes "²", which int() refuses.
    if account_id and (
        not (account_id.isascii() and account_id.isdigit()) or int(account_id) > ID_MAX
    ):
        raise APIError(400, "invalid", "“account” must be the id of a DEP account.")
    action = request.GET.get("action", "")
    if action and action not in AuditEvent.Action.values:
        actions = ", ".join(AuditEvent.Action.values)
        raise APIError(400, "invalid", f"“action” must be one of: {actions}.")
    since = request.GET.get("since")
    events = audit_events(
        account_id=int(account_id) if account_id else None,
        action=action,
        since=_moment(since) if since else None,
    )
    return json_answer(page_of(request, events, audit_event_representation))


def _moment(value: str) -> datetime:
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise APIError(
            400,
            "invalid",
            "“since” must be an RFC 3339 date and time with its offset, "
            "such as 2026-01-31T09:00:00Z.",
        )
    return moment


@require_GET
def openapi(request: HttpRequest) -> JsonResponse:
    return json_answer(OPENAPI)
