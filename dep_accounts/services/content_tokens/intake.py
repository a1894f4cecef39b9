"""One path for every content token file: read → decode → ask Apple → verdict → claim → store →
audit, as `services.intake` is for server tokens and with its pieces (reading, refusals,
staging).

Add Content Token, Edit Content Token, the API, `manage.py content_token upload` and Bulk
renewal all call `content_token_intake` (or its stages). The rules are in
`content_token_verdict`, once; a refusal is recorded here, once, whoever asked. Apple is told
that the portal manages the location (our `mdmInfo`) only after the verdict allows the file, so
a refused file never takes a location from another MDM.
"""

from __future__ import annotations

from datetime import datetime

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.views.decorators.debug import sensitive_variables

from dep_accounts.apple import vpp as apple_vpp
from dep_accounts.apple import vpp_client
from dep_accounts.encryption import secret_encrypt
from dep_accounts.models import AuditEvent, ContentToken, ContentTokenUpload
from dep_accounts.services.audit import actor_user, audit_record
from dep_accounts.services.content_tokens.apple_access import (
    apple_refusal,
    assets_count_apply,
    our_mdm_info,
    vpp_client_for,
)
from dep_accounts.services.content_tokens.state import content_token_state_for
from dep_accounts.services.content_tokens.verdict import (
    ContentTokenCheck,
    ContentTokenConfirmations,
    CurrentLocation,
    content_token_verdict,
    other_mdm_name,
)
from dep_accounts.services.expiry import banner_refresh
from dep_accounts.services.intake import TokenUpload, refusal_record, upload_read
from dep_accounts.services.verdict import (
    ConcurrentUploadError,
    Intent,
    Refusal,
    TokenFileError,
)
from dep_accounts.users import User

NOTHING_CONFIRMED = ContentTokenConfirmations()
EMPTY_CONTENT_TOKEN = "This file is empty: the download did not finish. " + apple_vpp.DOWNLOAD_AGAIN


@sensitive_variables()
def content_token_read(upload: TokenUpload) -> bytes:
    """The file's bytes; one too large for a content token is refused before it is read."""
    return upload_read(
        upload,
        max_bytes=settings.VPP_TOKEN_MAX_BYTES,
        too_large="This file is {size}; a content token is a few hundred bytes. "
        + apple_vpp.DOWNLOAD_AGAIN,
        empty=EMPTY_CONTENT_TOKEN,
    )


@sensitive_variables()
def content_token_check(*, token_file: bytes, now: datetime | None = None) -> ContentTokenCheck:
    """Decode a .vpptoken and, if the file itself passes, ask Apple about its location."""
    try:
        token = apple_vpp.content_token_decode(token_file)
    except apple_vpp.ContentTokenError as exc:
        raise TokenFileError(exc.message) from exc
    refusal = content_token_verdict(
        CurrentLocation(),
        ContentTokenCheck(token=token),
        NOTHING_CONFIRMED,
        now=now or timezone.now(),
        our_mdm_id=settings.VPP_MDM_ID,
    )
    if refusal is not None:
        raise refusal
    client = vpp_client_for(token)
    try:
        return ContentTokenCheck(token=token, config=client.client_config())
    except vpp_client.AppsBooksError as exc:
        raise apple_refusal(exc) from exc
    finally:
        client.close()


def current_for(content_token: ContentToken | None, check: ContentTokenCheck) -> CurrentLocation:
    """What the verdict weighs the checked file against, as the database has it now."""
    holders = ContentToken.objects.filter(location_uid=check.location.uid)
    if content_token is not None:
        holders = holders.exclude(pk=content_token.pk)
    return CurrentLocation(content_token=content_token, holder=holders.first())


def _verdict_raise(
    current: CurrentLocation,
    check: ContentTokenCheck,
    confirmations: ContentTokenConfirmations,
    intent: Intent,
) -> None:
    refusal = content_token_verdict(
        current,
        check,
        confirmations,
        now=timezone.now(),
        our_mdm_id=settings.VPP_MDM_ID,
        intent=intent,
    )
    if refusal is not None:
        raise refusal


@sensitive_variables()
def content_token_intake(
    *,
    content_token: ContentToken | None,
    upload: TokenUpload,
    actor: User | None,
    apple_id: str = "",
    intent: Intent = Intent.ANY,
    confirmations: ContentTokenConfirmations = NOTHING_CONFIRMED,
) -> ContentToken:
    """Take a .vpptoken, for a new location (`content_token` None) or to renew one, by every
    rule, or record and raise why not."""
    try:
        check = content_token_check(token_file=content_token_read(upload))
        _verdict_raise(current_for(content_token, check), check, confirmations, intent)
    except Refusal as refusal:
        content_token_refusal_record(content_token, actor, refusal, upload.name)
        raise
    return content_token_take(
        content_token=content_token,
        check=check,
        actor=actor,
        file_name=upload.name,
        apple_id=apple_id,
        intent=intent,
        confirmations=confirmations,
    )


def content_token_refusal_record(
    content_token: ContentToken | None, actor: User | None, refusal: Refusal, name: str
) -> None:
    refusal_record(
        account=None,
        actor=actor,
        refusal=refusal,
        file_name=name,
        action=AuditEvent.Action.CONTENT_TOKEN_REJECTED,
        what="Content token upload",
        kind="content_token",
        content_token=content_token,
    )


@sensitive_variables()
def content_token_take(
    *,
    content_token: ContentToken | None,
    check: ContentTokenCheck,
    actor: User | None,
    file_name: str = "",
    apple_id: str = "",
    intent: Intent = Intent.ANY,
    confirmations: ContentTokenConfirmations = NOTHING_CONFIRMED,
) -> ContentToken:
    """Claim the location with Apple and store the checked file, if the verdict allows it."""
    try:
        _verdict_raise(current_for(content_token, check), check, confirmations, intent)
        claimed, count = _claim(check)
        with transaction.atomic():
            locked = None
            if content_token is not None:
                rows = ContentToken.objects.select_for_update()
                locked = rows.filter(pk=content_token.pk).first()
            _verdict_raise(current_for(locked, check), check, confirmations, intent)
            stored = _store(locked, check, claimed, count, actor, file_name, apple_id)
    except IntegrityError as exc:
        refusal = ConcurrentUploadError(
            "Another upload for this location finished first. Reload the Content Tokens list."
        )
        content_token_refusal_record(content_token, actor, refusal, file_name)
        raise refusal from exc
    except Refusal as refusal:
        content_token_refusal_record(content_token, actor, refusal, file_name)
        raise
    banner_refresh()
    return stored


@sensitive_variables()
def _claim(
    check: ContentTokenCheck,
) -> tuple[vpp_client.ClientConfig, vpp_client.AssetCount | None]:
    """Set our mdmInfo on the location unless it is ours already, and count its licences."""
    client = vpp_client_for(check.token)
    try:
        config = check.location
        mdm = config.mdm_info
        if mdm is None or mdm.id != settings.VPP_MDM_ID:
            config = client.client_config_claim(mdm_info=our_mdm_info())
        try:
            count = client.assets_count()
        except vpp_client.AppsBooksError:
            # The licences are shown, not needed: the daily check counts them again.
            count = None
        return config, count
    except vpp_client.AppsBooksError as exc:
        raise apple_refusal(exc) from exc
    finally:
        client.close()


@sensitive_variables()
def _store(
    content_token: ContentToken | None,
    check: ContentTokenCheck,
    claimed: vpp_client.ClientConfig,
    count: vpp_client.AssetCount | None,
    actor: User | None,
    file_name: str,
    apple_id: str,
) -> ContentToken:
    now = timezone.now()
    token, found = check.token, check.location
    previous_expiry = content_token.expires_at if content_token is not None else None
    content_token = content_token or ContentToken(location_uid=found.uid)
    content_token.location_name = claimed.location_name
    content_token.country = claimed.country
    content_token.org_name = token.org_name
    content_token.website_url = claimed.website_url
    content_token.apple_id = apple_id or content_token.apple_id
    content_token.credential_encrypted = secret_encrypt(token.credential.encode())
    content_token.fingerprint = token.fingerprint
    content_token.expires_at = token.expires_at
    content_token.state, content_token.state_detail = content_token_state_for(
        expires_at=token.expires_at, now=now
    )
    content_token.mdm_name = claimed.mdm_info.name if claimed.mdm_info else ""
    content_token.checked_at = now
    assets_count_apply(content_token, count)
    content_token.save()
    taken_over_from = other_mdm_name(found, our_mdm_id=settings.VPP_MDM_ID)[:100]
    ContentTokenUpload.objects.create(
        content_token=content_token,
        fingerprint=token.fingerprint,
        expires_at=token.expires_at,
        apple_id=content_token.apple_id,
        taken_over_from=taken_over_from,
        file_name=file_name[:255],
        uploaded_by=actor_user(actor),
        uploaded_at=now,
    )
    _taken_record(content_token, previous_expiry, taken_over_from, actor, file_name)
    return content_token


def _taken_record(
    content_token: ContentToken,
    previous_expiry: datetime | None,
    taken_over_from: str,
    actor: User | None,
    file_name: str,
) -> None:
    details = {"fingerprint": content_token.fingerprint, "file_name": file_name[:255]}
    name, expiry = content_token.name, f"{content_token.expires_at:%-d %b %Y}"
    if taken_over_from:
        audit_record(
            action=AuditEvent.Action.CONTENT_TOKEN_TAKEN_OVER,
            message=f"Took the location “{name}” over from the MDM “{taken_over_from}”.",
            actor=actor,
            content_token=content_token,
            details=details | {"previous_mdm": taken_over_from},
        )
    if previous_expiry is None:
        audit_record(
            action=AuditEvent.Action.CONTENT_TOKEN_ADDED,
            message=f"Added the content token of “{name}” ({content_token.org_name}); "
            f"it expires {expiry}.",
            actor=actor,
            content_token=content_token,
            details=details,
        )
        return
    audit_record(
        action=AuditEvent.Action.CONTENT_TOKEN_RENEWED,
        message=f"Content token of “{name}” renewed: expires {expiry} "
        f"(was {previous_expiry:%-d %b %Y}).",
        actor=actor,
        content_token=content_token,
        details=details,
    )


def content_token_update(
    *,
    content_token: ContentToken,
    actor: User | None,
    apple_id: str,
    notification_emails: str,
) -> None:
    """Save who downloaded the content token and who is reminded, and record what changed."""
    wanted = {"apple_id": apple_id, "notification_emails": notification_emails}
    changes = {k: v for k, v in wanted.items() if getattr(content_token, k) != v}
    if not changes:
        return
    ContentToken.objects.filter(pk=content_token.pk).update(**changes)
    for name, value in changes.items():
        setattr(content_token, name, value)
    audit_record(
        action=AuditEvent.Action.CONTENT_TOKEN_CHANGED,
        message=f"Changed the {' and '.join(n.replace('_', ' ') for n in changes)} of the "
        f"content token of “{content_token.name}”.",
        actor=actor,
        content_token=content_token,
        details={"fields": sorted(changes)},
    )
