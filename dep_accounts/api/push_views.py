"""The API's push certificate: read it, get the signed request, upload what Apple issues."""

from __future__ import annotations

from django.core.files.uploadedfile import SimpleUploadedFile
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils.http import content_disposition_header
from django.views.decorators.debug import sensitive_variables

from dep_accounts.api.auth import APIError, api_endpoint
from dep_accounts.api.representations import push_certificate_representation
from dep_accounts.apple import apns
from dep_accounts.roles import can_manage, can_view
from dep_accounts.services.intake import TokenUpload
from dep_accounts.services.push.intake import (
    VendorCertificateMissingError,
    push_certificate_current,
    push_certificate_intake,
    push_request_make,
)
from dep_accounts.services.push.verdict import PushConfirmations, TopicChangedError
from dep_accounts.services.verdict import AppleIDChangedError, Refusal, TokenTooLargeError
from dep_accounts.users import SignedInRequest

CERTIFICATE_CONTENT_TYPES = {"application/x-pem-file", "application/octet-stream"}
TRUE_VALUES = {"true", "1", "yes", "on"}


def _json(body, status: int = 200) -> JsonResponse:
    return JsonResponse(body, status=status, json_dumps_params={"ensure_ascii": False})


@api_endpoint(GET=can_view)
def push_certificate(request: HttpRequest) -> JsonResponse:
    push = push_certificate_current()
    if push is None:
        raise APIError(
            404, "not_found", "No push certificate yet: POST to the request URL to start one."
        )
    return _json(push_certificate_representation(push, absolute=request.build_absolute_uri))


@api_endpoint(POST=can_manage)
def push_certificate_request(request: SignedInRequest) -> HttpResponse:
    try:
        signed_request = push_request_make(actor=request.user)
    except VendorCertificateMissingError as exc:
        raise APIError(409, "vendor_certificate_missing", exc.message) from exc
    response = HttpResponse(signed_request, content_type="application/octet-stream")
    response["Content-Disposition"] = content_disposition_header(
        as_attachment=True, filename="PushCertificateRequest.plist"
    )
    return response


@api_endpoint(POST=can_manage)
@sensitive_variables()
def push_certificate_upload(request: SignedInRequest) -> JsonResponse:
    def value(name: str) -> str:
        return (request.GET.get(name) or request.POST.get(name) or "").strip()

    confirmed = PushConfirmations(
        apple_id_changed=value("apple_id_changed").lower() in TRUE_VALUES,
        topic_replacement=value("replace_topic"),
    )
    try:
        push_certificate_intake(
            upload=_certificate_file(request),
            actor=request.user,
            apple_id=value("apple_id"),
            confirmations=confirmed,
        )
    except TokenTooLargeError as exc:
        limit = apns.PUSH_CERTIFICATE_MAX_BYTES
        raise APIError(413, exc.code, exc.message, limit_bytes=limit) from exc
    except Refusal as exc:
        raise APIError(422, exc.code, exc.message, **_refusal_details(exc)) from exc
    push = push_certificate_current()
    assert push is not None, "the intake has just stored one"
    return _json(push_certificate_representation(push, absolute=request.build_absolute_uri))


def _certificate_file(request: HttpRequest) -> TokenUpload:
    if request.content_type == "multipart/form-data":
        upload = request.FILES.get("certificate_file")
    elif request.content_type in CERTIFICATE_CONTENT_TYPES:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
        body = b"" if declared > apns.PUSH_CERTIFICATE_MAX_BYTES else request.body
        upload = SimpleUploadedFile("MDM_Certificate.pem", body)
        upload.size = max(declared, len(body))
    else:
        raise APIError(
            415,
            "unsupported_media_type",
            "Send the .pem file as the request body (Content-Type: application/x-pem-file) or "
            "as the field “certificate_file” of a multipart/form-data request.",
        )
    if upload is None:
        raise APIError(422, "bad_file", "Choose the .pem file the Apple portal gave.")
    # django-stubs types UploadedFile's name and size as optional (a file built by hand may lack
    # them); the multipart parser and the body's SimpleUploadedFile above always set both.
    return upload  # type: ignore[return-value]


def _refusal_details(exc: Refusal) -> dict:
    if isinstance(exc, TopicChangedError):
        return {
            "current_topic": exc.current,
            "found_topic": exc.found,
            "sign_in_apple_id": exc.apple_id,
        }
    if isinstance(exc, AppleIDChangedError):
        return {"previous_apple_id": exc.previous, "found_apple_id": exc.found}
    return {}
