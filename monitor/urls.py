"""Is this URL a place hubwatch may send data (alerts, its Hub token) to? Pure: no DNS, no I/O
(`monitor/alerts/vetted.py` applies `address_problem` to what a sink's name resolves to).

Sink URLs and the Hub endpoint come from the config or the environment, and whoever can set an
environment variable or slip a line into the config could otherwise aim our POSTs (with the
alert, or the Hub token in `Authorization`) at the cloud metadata service or another host's
link-local address. So a URL must parse, be `https` (plain `http` only to a loopback address,
for local relays and tests), and must not name a link-local or metadata address in any spelling
the HTTP stack would accept (`169.254.169.254`, `2852039166`, `0xa9.0xfe.0xa9.0xfe`,
`[::ffff:169.254.169.254]`, `[64:ff9b::a9fe:a9fe]`, `[fe80::1]`, `metadata.google.internal.`).

Problems are returned as text that never quotes the URL: webhook URLs are credentials.
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})
METADATA_NAMES = frozenset({"metadata.google.internal", "metadata.goog", "metadata", "instance-data",
                            "instance-data.ec2.internal", "metadata.azure.internal"})
# Metadata services outside link-local space: AWS's IPv6 endpoint, Alibaba, Azure's wire server.
METADATA_ADDRESSES = frozenset(ipaddress.ip_address(a) for a in
                               ("fd00:ec2::254", "100.100.100.200", "168.63.129.16"))
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


def _address(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The IP a literal host names, in any form getaddrinfo would accept; None for a DNS name."""
    try:
        ip = ipaddress.ip_address(host.split("%", 1)[0])  # drop an IPv6 zone id ("fe80::1%eth0")
    except ValueError:
        if not host or not all(c in "0123456789abcdefxABCDEFX." for c in host):
            return None
        try:  # inet_aton's legacy forms: "2852039166", "0xa9fea9fe", "169.254.43518"
            ip = ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    if isinstance(ip, ipaddress.IPv6Address):
        # IPv4 reached through IPv6: mapped, 6to4 and NAT64 (64:ff9b::/96) addresses lead to the
        # IPv4 address they embed, the metadata service included.
        if ip.ipv4_mapped is not None:
            return ip.ipv4_mapped
        if ip.sixtofour is not None:
            return ip.sixtofour
        if ip in _NAT64:
            return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return ip


def _refused(ip: ipaddress.IPv4Address | ipaddress.IPv6Address | None, plain_http: bool) -> str | None:
    """The rule that refuses sending to `ip` (None: a DNS name), if one does: "metadata" (link-local
    or a cloud metadata service), "unspecified", or "plain http" (over http, anything but loopback).
    Shared by the config check and the connect-time check so the two cannot drift apart."""
    if ip is not None and (ip.is_link_local or ip in METADATA_ADDRESSES):
        return "metadata"
    if ip is not None and ip.is_unspecified:
        return "unspecified"
    if plain_http and not (ip is not None and ip.is_loopback):
        return "plain http"
    return None


_ADDRESS_WORDS = {"metadata": "a link-local or cloud metadata address", "unspecified": "an unspecified address",
                  "plain http": "an address that is not loopback (plain http)"}
_URL_WORDS = {"metadata": "must not point at a link-local or cloud metadata address",
              "unspecified": "must not point at an unspecified address (0.0.0.0, ::)",
              "plain http": "must use https (plain http is allowed only to a loopback address)"}


def address_problem(address: str, plain_http: bool = False) -> str | None:
    """None when a connection may go to the IP `address` (what a sink's host name resolved to),
    else why not: the same rule as `url_problem`, applied to the address itself, so a DNS name
    that resolves to the metadata service is refused as its literal IP would be."""
    ip = _address(address)
    if ip is None:
        return "an address that is not an IP"
    refused = _refused(ip, plain_http)
    return _ADDRESS_WORDS[refused] if refused else None


def url_problem(value: str) -> str | None:
    """None when `value` is an acceptable outbound URL, else why not (without quoting it)."""
    if not isinstance(value, str) or not value.strip():
        return "must be a non-empty URL"
    if any(ord(c) < 0x21 or ord(c) == 0x7F for c in value.strip()):
        return "must not contain spaces or control characters"
    try:
        parts = urlsplit(value.strip())
        host = parts.hostname
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number in range
    except ValueError:
        return "is not a parseable URL (check brackets around IPv6 addresses and the port)"
    if parts.scheme not in ("https", "http") or not host:
        return "must be an https:// URL with a host"
    name = host.rstrip(".").lower()
    plain_http = parts.scheme == "http" and name not in LOOPBACK_NAMES
    refused = "metadata" if name in METADATA_NAMES else _refused(_address(name), plain_http)
    return _URL_WORDS[refused] if refused else None
