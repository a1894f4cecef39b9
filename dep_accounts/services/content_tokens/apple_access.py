"""Whether and how the portal asks Apple's Apps and Books service about a content token: our
`mdmInfo`, the client, and what Apple's refusals mean for an upload."""

from __future__ import annotations

from django.conf import settings
from django.utils import timezone
from django.views.decorators.debug import sensitive_variables

from dep_accounts.apple import vpp as apple_vpp
from dep_accounts.apple import vpp_client
from dep_accounts.links import portal_url
from dep_accounts.models import ContentToken
from dep_accounts.services.verdict import AppleRefusedTokenError, AppleUnreachableError, Refusal


def our_mdm_info() -> vpp_client.MdmInfo:
    """Who the portal is to Apple's Apps and Books service (settings.VPP_MDM_ID and _NAME)."""
    return vpp_client.MdmInfo(
        id=settings.VPP_MDM_ID, name=settings.VPP_MDM_NAME, metadata=portal_url("/")[:255]
    )


@sensitive_variables()
def vpp_client_for(token: apple_vpp.ContentToken) -> vpp_client.AppsBooksClient:
    """The client that speaks to Apple (or applesim, at `VPP_API_URL`) with this content token."""
    return vpp_client.AppsBooksClient(
        content_token=token,
        base_url=settings.VPP_API_URL,
        timeout=(5, settings.DEP_API_TIMEOUT_SECONDS),
        max_retry_wait=settings.VPP_RETRY_MAX_WAIT_SECONDS,
    )


def apple_refusal(error: vpp_client.AppsBooksError) -> Refusal:
    """What an upload says when Apple refuses or cannot answer: Apple's words, nothing changed."""
    unreachable = vpp_client.AppsBooksRateLimitedError | vpp_client.AppsBooksUnavailableError
    if isinstance(error, unreachable):
        return AppleUnreachableError(error.message)
    if isinstance(error, vpp_client.AppsBooksRequestError):
        return AppleRefusedTokenError(
            f"Apple refused this content token: {error.message} Nothing was changed."
        )
    return AppleRefusedTokenError(error.message)


def assets_count_apply(content_token: ContentToken, count: vpp_client.AssetCount | None) -> None:
    """Copy Apple's licence count onto the content token (unsaved); None keeps the last one."""
    if count is None:
        return
    content_token.asset_count = count.assets
    content_token.licences_total = count.licences_total
    content_token.licences_assigned = count.licences_assigned
    content_token.licences_available = count.licences_available
    content_token.counted_at = timezone.now()
