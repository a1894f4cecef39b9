"""The account's default enrollment profile, assigned during sync to each device waiting for it."""

from __future__ import annotations

from collections.abc import Callable

from django.utils.translation import ngettext

from dep_accounts.apple import client as apple_client
from dep_accounts.apple import dep_errors
from dep_accounts.models import DEPAccount, DEPDevice

# Apple takes at most 1,000 serials in one assignment (assign-profile).
ASSIGN_BATCH = 1000
# Apple may ask to wait; a wait this short is spent in the task, a longer one is rescheduled.
MAX_INLINE_WAIT_SECONDS = 10.0


def default_profile_assign(
    client: apple_client.DEPClient, account: DEPAccount, *, sleep: Callable[[float], object]
) -> None:
    """Assign the default profile to every device still waiting for it, in Apple's batches."""
    profile = account.default_profile
    assert profile is not None, "called only for an account with a default profile"
    pending = DEPDevice.objects.filter(
        account=account, default_profile_pending=True, removed_at__isnull=True
    )
    serials = list(pending.order_by("serial_number").values_list("serial_number", flat=True))
    for start in range(0, len(serials), ASSIGN_BATCH):
        batch = serials[start : start + ASSIGN_BATCH]
        for _attempt in range(3):
            assignment = client.profile_assign(profile_uuid=profile.profile_uuid, serials=batch)
            results = assignment.devices
            assigned = [s for s, r in results.items() if r == "SUCCESS"]
            DEPDevice.objects.filter(account=account, serial_number__in=assigned).update(
                profile_uuid=profile.profile_uuid,
                profile_status="assigned",
                default_profile_pending=False,
            )
            # NOT_ACCESSIBLE and FAILED are Apple's final word on a device: stop asking.
            settled = [s for s, r in results.items() if r not in ("SUCCESS", "THROTTLED")]
            DEPDevice.objects.filter(account=account, serial_number__in=settled).update(
                default_profile_pending=False
            )
            batch = [s for s, r in results.items() if r == "THROTTLED"]
            wait = assignment.retry_after_seconds or 0
            if not batch or wait > MAX_INLINE_WAIT_SECONDS:
                break
            sleep(wait)
        if batch:
            raise dep_errors.ThrottledError(
                ngettext(
                    "Apple throttled the assignment of %(count)d device.",
                    "Apple throttled the assignment of %(count)d devices.",
                    len(batch),
                )
                % {"count": len(batch)},
                retry_after=float(assignment.retry_after_seconds or 60),
            )
