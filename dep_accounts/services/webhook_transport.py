"""How a webhook reaches its receiver: only at a public address, pinned to the one that was checked.

A webhook URL is typed by an admin, so without a check it reaches whatever the portal's network
reaches (Redis on 127.0.0.1:6379, a cloud metadata service on 169.254.169.254, the LAN), and the
delivery log would tell open ports from closed ones. At send time the host is resolved once;
every address it resolves to must be public (not loopback, private, link-local, multicast,
reserved or unspecified, IPv4-mapped IPv6 included) unless settings.WEBHOOK_ALLOWED_NETWORKS
lists it. The connection then goes to that checked address, with the name kept in the Host
header and TLS's SNI and certificate check, so a second DNS answer (a rebinding) is never asked.
"""

from __future__ import annotations

import ipaddress
import socket
import ssl
from dataclasses import dataclass
from typing import TypedDict
from urllib.parse import urlsplit

import certifi
import urllib3
from django.conf import settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class ReceiverRefusedError(Exception):
    """The webhook's URL may not be sent to; the message says why and what to do."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class ReceiverAnswer:
    status: int


class _PoolOptions(TypedDict):
    """What the HTTP and HTTPS connection pools to a receiver share."""

    port: int
    timeout: urllib3.Timeout
    retries: bool
    maxsize: int


def url_has_credentials(url: str) -> bool:
    """A user name or password in the URL (`https://user:pass@host/`)."""
    parts = urlsplit(url)
    return parts.username is not None or parts.password is not None


def url_without_credentials(url: str) -> str:
    """The URL as it may be shown: any `user:password@` taken out."""
    parts = urlsplit(url)
    if not url_has_credentials(url):
        return url
    host = parts.netloc.rpartition("@")[2]
    return parts._replace(netloc=host).geturl()


def _allowed_networks() -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    return [ipaddress.ip_network(n, strict=False) for n in settings.WEBHOOK_ALLOWED_NETWORKS]


def address_refusal(address: IPAddress) -> str:
    """What kind of address a receiver may not be at this is ("" when it may be there)."""
    checked = [address]
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        # ::ffff:127.0.0.1 reaches 127.0.0.1: judged as the IPv4 address it stands for.
        checked.insert(0, address.ipv4_mapped)
    if any(a in network for a in checked for network in _allowed_networks()):
        return ""
    for a in checked:
        for flag, kind in (
            ("is_loopback", "a loopback"),
            ("is_unspecified", "an unspecified"),
            ("is_link_local", "a link-local"),
            ("is_multicast", "a multicast"),
            ("is_private", "a private"),
            ("is_reserved", "a reserved"),
        ):
            if getattr(a, flag):
                return f"{kind} address"
        if not a.is_global:
            return "not a public address"
    return ""


def receiver_address(host: str, port: int) -> IPAddress:
    """The one address the receiver is sent to, after every address of `host` was checked."""
    try:
        answers = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise ReceiverRefusedError(f"The receiver's host {host} does not resolve.") from exc
    addresses = list(
        dict.fromkeys(ipaddress.ip_address(str(a[4][0]).split("%")[0]) for a in answers)
    )
    if not addresses:
        raise ReceiverRefusedError(f"The receiver's host {host} does not resolve.")
    for address in addresses:
        why = address_refusal(address)
        if why:
            raise ReceiverRefusedError(
                f"Not sent: {host} resolves to {address}, {why}, which webhooks may not "
                "reach. Use a public receiver, or add its network to WEBHOOK_ALLOWED_NETWORKS."
            )
    return addresses[0]


def receiver_post(
    *, url: str, body: bytes, headers: dict[str, str], timeout: float
) -> ReceiverAnswer:
    """POST `body` to the checked address of `url`'s host; no redirect is followed.

    Raises ReceiverRefusedError before any connection when the URL may not be sent to, and
    urllib3's errors when the receiver cannot be reached.
    """
    if url_has_credentials(url):
        raise ReceiverRefusedError(
            "Not sent: the URL holds a user name or password. Delete this webhook and add it "
            "again without them; the receiver checks the signature instead."
        )
    parts = urlsplit(url)
    host = parts.hostname or ""
    default_port = 443 if parts.scheme == "https" else 80
    port = parts.port or default_port
    address = receiver_address(host, port)
    options: _PoolOptions = {
        "port": port,
        "timeout": urllib3.Timeout(timeout),
        "retries": False,
        "maxsize": 1,
    }
    if parts.scheme == "https":
        pool: urllib3.HTTPConnectionPool = urllib3.HTTPSConnectionPool(
            str(address),
            server_hostname=host,
            assert_hostname=host,
            cert_reqs=ssl.CERT_REQUIRED,
            ca_certs=certifi.where(),
            **options,
        )
    else:
        pool = urllib3.HTTPConnectionPool(str(address), **options)
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    with pool:
        response = pool.urlopen(
            "POST",
            path,
            body=body,
            headers={**headers, "Host": parts.netloc},
            redirect=False,
            assert_same_host=False,
            preload_content=True,
        )
    return ReceiverAnswer(status=response.status)
