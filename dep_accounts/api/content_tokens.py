"""The API's content token and credentials views, calling the same services as the console."""

from __future__ import annotations

from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.http import HttpRequest, JsonResponse
from django.urls import reverse
from django.views.decorators.debug import sensitive_variables

from dep_accounts.api.auth import APIError, api_endpoint
from dep_accounts.api.credential_representations import (
    content_token_detail_representation,
    content_token_refusal_details,
    content_token_representation,
    credential_representation,
)
from dep_accounts.api.views import TRUE_VALUES, json_answer, page_of
from dep_accounts.models import ContentToken
from dep_accounts.roles import can_manage, can_view
from dep_accounts.services.content_tokens.intake import content_token_intake
from dep_accounts.services.content_tokens.verdict import ContentTokenConfirmations
from dep_accounts.services.credentials import credentials_all
from dep_accounts.services.intake import TokenUpload
from dep_accounts.services.verdict import Refusal, TokenTooLargeError
from dep_accounts.users import SignedInRequest

# ABM's .vpptoken is base64 text; scripts send it as text or as bytes.
VPPTOKEN_CONTENT_TYPES = {"application/octet-stream", "text/plain"}


@api_endpoint(GET=can_view)
def credentials(request: HttpRequest) -> JsonResponse:
    absolute = request.build_absolute_uri
    rows = credentials_all()
    return json_answer(
        page_of(request, rows, lambda r: credential_representation(r, absolute=absolute))
    )


def _content_token_get(content_token_id: int) -> ContentToken:
    content_token = ContentToken.objects.filter(pk=content_token_id).first()
    if content_token is None:
        raise APIError(404, "not_found", f"There is no content token with id {content_token_id}.")
    return content_token


@api_endpoint(GET=can_view, POST=can_manage)
def content_tokens(request: SignedInRequest) -> JsonResponse:
    if request.method == "POST":
        content_token = _intake(request, None)
        response = json_answer(
            content_token_detail_representation(content_token, absolute=request.build_absolute_uri),
            status=201,
        )
        response["Location"] = request.build_absolute_uri(
            reverse("api:content_token", args=[content_token.pk])
        )
        return response
    absolute = request.build_absolute_uri
    return json_answer(
        page_of(
            request,
            ContentToken.objects.all(),
            lambda c: content_token_representation(c, absolute=absolute),
        )
    )


@api_endpoint(GET=can_view)
def content_token(request: HttpRequest, content_token_id: int) -> JsonResponse:
    found = _content_token_get(content_token_id)
    absolute = request.build_absolute_uri
    return json_answer(content_token_detail_representation(found, absolute=absolute))


@api_endpoint(POST=can_manage)
def content_token_token(request: SignedInRequest, content_token_id: int) -> JsonResponse:
    renewed = _intake(request, _content_token_get(content_token_id))
    absolute = request.build_absolute_uri
    return json_answer(content_token_detail_representation(renewed, absolute=absolute))


def _flag(request: HttpRequest, name: str) -> str:
    return request.GET.get(name) or request.POST.get(name) or ""


@sensitive_variables("upload")
def _intake(request: SignedInRequest, content_token: ContentToken | None) -> ContentToken:
    upload = _vpptoken_file(request)
    confirmed = ContentTokenConfirmations(
        take_over=_flag(request, "take_over").lower() in TRUE_VALUES
    )
    apple_id = _flag(request, "apple_id")
    if len(apple_id) > 254:
        raise APIError(400, "invalid", "“apple_id” must be at most 254 characters.")
    try:
        return content_token_intake(
            content_token=content_token,
            upload=upload,
            actor=request.user,
            apple_id=apple_id,
            confirmations=confirmed,
        )
    except TokenTooLargeError as exc:
        limit = settings.VPP_TOKEN_MAX_BYTES
        raise APIError(413, exc.code, exc.message, limit_bytes=limit) from exc
    except Refusal as exc:
        raise APIError(422, exc.code, exc.message, **content_token_refusal_details(exc)) from exc


def _vpptoken_file(request: HttpRequest) -> TokenUpload:
    """The uploaded .vpptoken, as a multipart field or the whole body; its size is the intake's."""
    if request.content_type == "multipart/form-data":
        upload = request.FILES.get("token_file")
    elif request.content_type in VPPTOKEN_CONTENT_TYPES:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
        # Not read at all when it declares more than a content token can be.
        body = b"" if declared > settings.VPP_TOKEN_MAX_BYTES else request.body
        upload = SimpleUploadedFile("content.vpptoken", body, content_type="text/plain")
        upload.size = max(declared, len(body))
    else:
        raise APIError(
            415,
            "unsupported_media_type",
            "Send the .vpptoken file as the request body (Content-Type: "
            "application/octet-stream) or as the field “token_file” of a multipart/form-data "
            "request.",
        )
    if upload is None:
        raise APIError(422, "bad_file", "Choose the .vpptoken file you downloaded from ABM.")
    # An uploaded file has a name and a size (django-stubs types both optional): the multipart
    # parser and the body above always set them.
    return upload  # type: ignore[return-value]
