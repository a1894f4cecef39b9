"""The client's address behind the reverse proxies the portal trusts (TRUSTED_PROXY_COUNT).

Each proxy appends the address it was connected from to X-Forwarded-For, so the last
TRUSTED_PROXY_COUNT entries were written by trusted proxies and the first of them is the client
as the outermost proxy saw it. Whatever a client puts in the header itself stays to the left
and is never read: it cannot pose as another client.
"""

from __future__ import annotations

import ipaddress

from django.conf import settings
from django.http import HttpRequest


def client_address(request: HttpRequest) -> str | None:
    """The address login throttling (django-axes) counts failures against."""
    count = settings.TRUSTED_PROXY_COUNT
    remote = request.META.get("REMOTE_ADDR") or None
    if count <= 0:
        return remote
    forwarded = [
        entry.strip()
        for entry in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")
        if entry.strip()
    ]
    if len(forwarded) < count:
        # Not through the proxies (a direct connection): the peer is the only address known.
        return remote
    candidate = forwarded[-count]
    try:
        return str(ipaddress.ip_address(candidate))
    except ValueError:
        return remote
