"""A content token's state: from its expiry (hourly, in one UPDATE) and from Apple (daily, and
on demand), with the audit, the webhook and the banner each change brings.

Apple's verdicts (revoked, invalid, another MDM) stay until the token expires or a new one is
uploaded: only Apple can lift them, and only the next check with Apple finds out.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Case, F, Value, When
from django.utils import timezone
from django.views.decorators.debug import sensitive_variables

from dep_accounts.apple import vpp as apple_vpp
from dep_accounts.apple import vpp_client
from dep_accounts.encryption import secret_decrypt
from dep_accounts.errors import DomainError
from dep_accounts.models import AuditEvent, ContentToken
from dep_accounts.services.apple_access import licence_blocker
from dep_accounts.services.audit import audit_record
from dep_accounts.services.content_tokens.apple_access import assets_count_apply, vpp_client_for
from dep_accounts.services.content_tokens.verdict import other_mdm_name
from dep_accounts.services.expiry import banner_refresh
from dep_accounts.services.expiry_stage import expiry_state_for
from dep_accounts.services.webhooks import webhooks_emit_content_token_state

logger = logging.getLogger(__name__)

State = ContentToken.State
APPLE_VERDICTS = (State.REVOKED, State.INVALID, State.ANOTHER_MDM)
_APPLE_ERROR_STATES = {
    vpp_client.AppsBooksTokenExpiredError: State.EXPIRED,
    vpp_client.AppsBooksTokenRevokedError: State.REVOKED,
    vpp_client.AppsBooksTokenInvalidError: State.INVALID,
}


class ContentTokenCheckUnavailableError(DomainError):
    """Apple could not be asked now (the licence, a rate limit, an outage): nothing changed."""


def content_token_state_for(*, expires_at: datetime, now: datetime) -> tuple[str, str]:
    """The state a content token's expiry alone gives, with the reason shown to admins."""
    return expiry_state_for(expires_at=expires_at, now=now, what="content token")


def content_token_states_refresh(*, now: datetime | None = None) -> int:
    """Recompute every content token's expiry state in one UPDATE; Apple's verdicts stay."""
    now = now or timezone.now()
    critical = now + timedelta(days=settings.DEP_TOKEN_CRITICAL_DAYS)
    warning = now + timedelta(days=settings.DEP_TOKEN_WARNING_DAYS)
    return ContentToken.objects.update(
        state=Case(
            When(expires_at__lte=now, then=Value(State.EXPIRED)),
            When(state__in=APPLE_VERDICTS, then=F("state")),
            When(expires_at__lte=critical, then=Value(State.CRITICAL)),
            When(expires_at__lte=warning, then=Value(State.WARNING)),
            default=Value(State.OK),
        ),
    )


def content_token_state_set(*, content_token: ContentToken, state: str, detail: str) -> None:
    """Record a new state learnt from Apple, with its audit entry, webhook and banner."""
    if state == State.OK:
        state, detail = content_token_state_for(
            expires_at=content_token.expires_at, now=timezone.now()
        )
    if content_token.state == state and content_token.state_detail == detail[:500]:
        return
    ContentToken.objects.filter(pk=content_token.pk).update(state=state, state_detail=detail[:500])
    content_token.state, content_token.state_detail = state, detail[:500]
    audit_record(
        action=AuditEvent.Action.STATE_CHANGED,
        message=f"Content token of “{content_token.name}”: "
        f"{content_token.get_state_display()}. {detail}".strip(),
        content_token=content_token,
        outcome=AuditEvent.Outcome.SUCCESS
        if content_token.is_usable
        else AuditEvent.Outcome.FAILURE,
    )
    webhooks_emit_content_token_state(content_token=content_token)
    banner_refresh()


@sensitive_variables()
def content_token_refresh(*, content_token: ContentToken) -> ContentToken:
    """Ask Apple about a stored content token: its location, who manages it, its licences.

    Raises ContentTokenCheckUnavailableError, changing nothing, when Apple cannot be asked now.
    """
    blocker = licence_blocker()
    if blocker:
        raise ContentTokenCheckUnavailableError(blocker)
    token = apple_vpp.content_token_decode(secret_decrypt(content_token.credential_encrypted))
    client = vpp_client_for(token)
    try:
        config = client.client_config()
        count = client.assets_count()
    except (vpp_client.AppsBooksRateLimitedError, vpp_client.AppsBooksUnavailableError) as exc:
        raise ContentTokenCheckUnavailableError(exc.message) from exc
    except vpp_client.AppsBooksError as exc:
        state = _APPLE_ERROR_STATES.get(type(exc), State.INVALID)
        content_token_state_set(content_token=content_token, state=state, detail=exc.message)
        return content_token
    finally:
        client.close()
    content_token.location_name = config.location_name
    content_token.country = config.country
    content_token.mdm_name = config.mdm_info.name if config.mdm_info else ""
    content_token.checked_at = timezone.now()
    assets_count_apply(content_token, count)
    content_token.save()
    mdm_name = other_mdm_name(config, our_mdm_id=settings.VPP_MDM_ID)
    if mdm_name:
        detail = (
            f"Another MDM (“{mdm_name}”) has taken this location over in Apple's Apps and Books "
            "service: the portal no longer manages its apps and books. Upload its content "
            "token again and confirm the take-over to manage it here."
        )
        content_token_state_set(content_token=content_token, state=State.ANOTHER_MDM, detail=detail)
    else:
        content_token_state_set(content_token=content_token, state=State.OK, detail="")
    return content_token


def content_tokens_check() -> int:
    """Daily: ask Apple about every content token not expired; return how many were asked."""
    checked = 0
    for content_token in ContentToken.objects.filter(expires_at__gt=timezone.now()):
        try:
            content_token_refresh(content_token=content_token)
        except ContentTokenCheckUnavailableError as exc:
            logger.warning("Content token %s not checked: %s", content_token.pk, exc.message)
            if licence_blocker():
                break
            continue
        checked += 1
    return checked
