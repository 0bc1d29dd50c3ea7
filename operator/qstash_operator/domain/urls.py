"""Can QStash reach this URL? A pure check, caught before QStash answers it.

Production QStash refuses destinations that resolve to loopback or private addresses ("invalid
destination url: endpoint resolves to a loopback address", the seed's first troubleshooting entry).
This module refuses them earlier, with a message that says what to do. It looks only at the URL's
text (literal IPs and names that are never public); resolving DNS is I/O and out of scope here.
"""

from __future__ import annotations

import ipaddress
from typing import Final
from urllib.parse import urlsplit

_LOCAL_SUFFIXES: Final = (
    ".localhost",
    ".local",
    ".internal",
    ".svc",
    ".cluster.local",
    ".home.arpa",
    ".lan",
    ".test",
    ".invalid",
    ".example",
)
FIX: Final = (
    "Set WEBHOOK_PUBLIC_URL to an https:// address on the public internet that routes to the "
    "webhook Service (an Ingress, a load balancer or a tunnel); QStash cannot call into a "
    "private network."
)


def check_public_url(url: str, *, allow_private: bool = False) -> str | None:
    """None when QStash can plausibly reach ``url``; otherwise the problem, ending in the fix.

    With ``allow_private`` (local stacks, where the QStash-compatible server runs next to the
    webhook) only the shape is checked.
    """
    try:
        parts = urlsplit(url)
        host = parts.hostname
        _ = parts.port  # raises ValueError on a bad port
    except ValueError:
        return f"WEBHOOK_PUBLIC_URL {url!r} cannot be parsed. {FIX}"
    if parts.scheme not in ("http", "https") or not host:
        return f"WEBHOOK_PUBLIC_URL {url!r} is not an http(s) URL with a host. {FIX}"
    if parts.query or parts.fragment:
        return f"WEBHOOK_PUBLIC_URL {url!r} must not carry a query or fragment. {FIX}"
    if allow_private:
        return None
    if parts.scheme != "https":
        return f"WEBHOOK_PUBLIC_URL {url!r} is not https; deliveries carry signed requests. {FIX}"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        name = host.lower().rstrip(".")
        if name == "localhost" or name.endswith(_LOCAL_SUFFIXES):
            return (
                f"WEBHOOK_PUBLIC_URL host {host!r} resolves to a loopback or private address. {FIX}"
            )
        if "." not in name:
            return f"WEBHOOK_PUBLIC_URL host {host!r} is a single-label name, not public DNS. {FIX}"
        return None
    if address.is_loopback:
        return f"WEBHOOK_PUBLIC_URL host {host} is a loopback address. {FIX}"
    if address.is_link_local:
        return f"WEBHOOK_PUBLIC_URL host {host} is a link-local address. {FIX}"
    if address.is_private or address.is_reserved or address.is_unspecified or address.is_multicast:
        return f"WEBHOOK_PUBLIC_URL host {host} is a private or reserved address. {FIX}"
    return None


def is_loopback(url: str) -> bool:
    """Whether ``url`` names this machine: ``localhost`` or a literal loopback address. Anything
    else may be another machine, whatever the name suggests."""
    try:
        host = urlsplit(url).hostname
    except ValueError:
        return False
    if not host:
        return False
    if host.lower().rstrip(".") == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback
