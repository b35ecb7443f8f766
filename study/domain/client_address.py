"""The client's address for sign-in throttling: the connection's address, or, behind a trusted reverse proxy,
the address that proxy put into ``X-Forwarded-For``.

Why a setting: ``X-Forwarded-For`` is whatever the client wrote unless a proxy we trust wrote it, so it is read
only when the connection comes from one of ``[server] trusted_proxies`` (``REVISION_TRUSTED_PROXIES``:
addresses or networks, e.g. ``127.0.0.1, ::1`` for nginx on the same host). The header is then read from
the right: each trusted proxy appends the address it saw, so the first address from the right that is not a
trusted proxy is the client. Without the setting no proxy is trusted and the connection's address counts.
IPv4 addresses seen through an IPv6 socket (``::ffff:127.0.0.1``) are written as IPv4.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from study.storage import settings

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
LOOPBACK = "127.0.0.1"  # what Streamlit's ``st.context.ip_address`` = None means: a connection from this host
MAX_HOPS = 20  # a header with more entries than this is not read past them


class TrustedProxiesSettingError(ValueError):
    """``[server] trusted_proxies`` / ``REVISION_TRUSTED_PROXIES`` names something that is not an address."""


def normalise(address: str | None) -> str | None:
    """``address`` as a plain IPv4 or IPv6 address (an IPv4-mapped IPv6 address as IPv4), or None."""
    if not isinstance(address, str):
        return None
    try:
        ip = ipaddress.ip_address(address.strip().strip("[]").split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return str(ip)


def parse_trusted(raw: object, where: str = "[server] trusted_proxies") -> tuple[Network, ...]:
    """The trusted proxies of a setting: a list, or a comma-separated text, of addresses or networks."""
    items: Iterable = raw.split(",") if isinstance(raw, str) else raw if isinstance(raw, list) else None
    if items is None:
        raise TrustedProxiesSettingError(f"{where} must be a list of addresses or networks, e.g. "
                                         "[\"127.0.0.1\", \"::1\", \"10.0.0.0/8\"]")
    out = []
    for item in items:
        text = str(item).strip()
        if not text:
            continue
        try:
            net = ipaddress.ip_network(text, strict=False)
        except ValueError:
            raise TrustedProxiesSettingError(f"{where}: {text[:60]!r} is not an address or a network (write "
                                             "e.g. 127.0.0.1, ::1 or 10.0.0.0/8)") from None
        out.append(net)
        if isinstance(net, ipaddress.IPv6Network) and net.prefixlen == 128 and \
                ipaddress.IPv6Address(net.network_address).ipv4_mapped is not None:
            out.append(ipaddress.ip_network(str(ipaddress.IPv6Address(net.network_address).ipv4_mapped)))
    return tuple(out)


def configured_trusted() -> tuple[Network, ...]:
    """The trusted proxies from the settings (none when unset); raises TrustedProxiesSettingError."""
    found = settings.trusted_proxies()
    return () if found is None else parse_trusted(found.value, found.where)


def _trusted(address: str, trusted: tuple[Network, ...]) -> bool:
    ip = ipaddress.ip_address(address)
    return any(ip.version == net.version and ip in net for net in trusted)


def trusted_peer(peer: str | None, trusted: tuple[Network, ...]) -> bool:
    """Whether a connection from ``peer`` (None = this host) comes from a trusted proxy."""
    address = normalise(peer) if peer is not None else LOOPBACK
    return address is not None and _trusted(address, trusted)


def client_address(peer: str | None, forwarded_for: str | None, trusted: tuple[Network, ...]) -> str:
    """The client's address: ``peer`` (None = this host, as Streamlit reports a loopback connection), or,
    when ``peer`` is a trusted proxy, the right-most address of ``forwarded_for`` that is not one."""
    address = normalise(peer) if peer is not None else LOOPBACK
    if address is None:
        return str(peer)[:80]
    if not trusted or not forwarded_for or not _trusted(address, trusted):
        return address
    for hop in reversed(forwarded_for.split(",")[-MAX_HOPS:]):
        hop_address = normalise(hop)
        if hop_address is None:
            return address  # a malformed entry: do not read past it
        address = hop_address
        if not _trusted(address, trusted):
            return address
    return address
