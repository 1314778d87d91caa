"""Where our servers may connect on a key's behalf (webhook receivers, probed cameras).

A key that is not an admin's could otherwise aim the platform at what only the platform can
reach: its own services, the cloud's metadata address, the machine's loopback, other sites'
networks. Every connection made for such a key is checked here after its name is resolved,
and made to the address that was checked (a name that resolves again elsewhere is not asked
twice), on every redirect anew.

The rules, first match wins:
  1. `deny` networks (config): refused for every key, admins' too.
  2. An admin's key: allowed.
  3. The platform's own services (address and port): refused.
  4. `allow` networks (config): allowed.
  5. Loopback, link-local, unspecified, multicast and reserved addresses: refused.
  6. Private ranges (RFC 1918, unique-local, shared CGNAT): allowed only inside the networks
     the site says its cameras live on (`sites.networks`, set by admins).
  7. Anything else (the internet): allowed.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urljoin, urlsplit, urlunsplit

import httpx

from common.urls import host_and_port

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Refusal = Literal[
    "denied by the egress policy",
    "a loopback address",
    "a link-local address",
    "not a unicast address",
    "a private address outside the site's camera networks",
    "the host name does not resolve",
]


class EgressRefusedError(Exception):
    """A connection the policy does not allow; the reason is one of a few categories, which
    name no address (the key may not learn what the platform's own addresses are)."""

    def __init__(self, reason: Refusal) -> None:
        super().__init__(reason)
        self.reason: Refusal = reason


def unmapped(address: IPAddress) -> IPAddress:
    """An IPv4 address written as IPv6 (::ffff:127.0.0.1) is the IPv4 address it carries."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def parse_networks(texts: Iterable[str]) -> list[IPNetwork]:
    """Networks as `10.1.0.0/16` or one address; a ValueError names one with host bits set."""
    networks = []
    for text in texts:
        try:
            networks.append(ipaddress.ip_network(text, strict=True))
        except ValueError:
            raise ValueError(f"{text!r} is not a network such as 10.1.0.0/16") from None
    return networks


@dataclass(frozen=True)
class EgressPolicy:
    """The rules above, for one deployment.

    Example:
        >>> policy = EgressPolicy(services={(ipaddress.ip_address("10.0.0.5"), 8333)})
        >>> site = parse_networks(["10.0.0.0/24"])
        >>> policy.refusal(ipaddress.ip_address("10.0.0.9"), 554, site, admin=False) is None
        True
        >>> policy.refusal(ipaddress.ip_address("10.0.0.5"), 8333, site, admin=False)
        'denied by the egress policy'
        >>> policy.refusal(ipaddress.ip_address("169.254.169.254"), 80, [], admin=False)
        'a link-local address'
    """

    allow: tuple[IPNetwork, ...] = ()
    deny: tuple[IPNetwork, ...] = ()
    services: Collection[tuple[IPAddress, int]] = field(default_factory=frozenset)

    def refusal(
        self, address: IPAddress, port: int, site_networks: Iterable[IPNetwork], admin: bool
    ) -> Refusal | None:
        """Why a connection to `address`:`port` is refused, or None if it is allowed."""
        address = unmapped(address)
        if any(address in network for network in self.deny):
            return "denied by the egress policy"
        if admin:
            return None
        if (address, port) in self.services:
            return "denied by the egress policy"
        if any(address in network for network in self.allow):
            return None
        if address.is_loopback:
            return "a loopback address"
        if address.is_link_local:
            return "a link-local address"
        if address.is_unspecified or address.is_multicast or address.is_reserved:
            return "not a unicast address"
        if address.is_private or address in SHARED_ADDRESS_SPACE:
            if any(address in network for network in site_networks):
                return None
            return "a private address outside the site's camera networks"
        return None

    def resolve(self, host: str, port: int, site_networks: Iterable[IPNetwork], admin: bool) -> str:
        """The address to connect to for `host`: every address the name resolves to must be
        allowed (else a name could mix an allowed and a refused one); EgressRefusedError if not."""
        networks = list(site_networks)
        addresses = resolved(host, port)
        if not addresses:
            raise EgressRefusedError("the host name does not resolve")
        for address in addresses:
            reason = self.refusal(address, port, networks, admin)
            if reason is not None:
                raise EgressRefusedError(reason)
        return str(addresses[0])

    def destination(self, site_networks: Iterable[IPNetwork], admin: bool) -> Destination:
        """`resolve` for one key and its sites' networks."""
        networks = list(site_networks)
        return lambda host, port: self.resolve(host, port, networks, admin)


# 100.64.0.0/10, carriers' NAT: not private by Python's table, not the internet either.
SHARED_ADDRESS_SPACE = ipaddress.ip_network("100.64.0.0/10")


def service_addresses(endpoints: Iterable[tuple[str, int]]) -> frozenset[tuple[IPAddress, int]]:
    """The addresses of the platform's own services, each (host, port) resolved now; a service
    listening on every address (0.0.0.0, ::) stands for this machine's loopback and names."""
    found: set[tuple[IPAddress, int]] = set()
    for host, port in endpoints:
        unspecified = host.strip("[]") in ("0.0.0.0", "::")
        for name in ["127.0.0.1", "::1", socket.gethostname()] if unspecified else [host]:
            # a service that does not resolve here cannot be reached from here either
            found.update((address, port) for address in resolved(name, port))
    return frozenset(found)


def resolved(host: str, port: int) -> list[IPAddress]:
    """The addresses `host` resolves to (IPv4 ones written as IPv6 unmapped); [] if none."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        return []
    return [unmapped(ipaddress.ip_address(str(info[4][0]).partition("%")[0])) for info in infos]


Destination = Callable[[str, int], str]  # (host, port) -> the address to connect to, or refused
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})


def pinned(url: str, address: str) -> tuple[str, dict[str, str], dict[str, Any]]:
    """`url` aimed at `address`, still naming its host: (the URL to request, the Host header,
    httpx's request extensions with the TLS server name).

    Example:
        >>> pinned("https://hooks.example.org/in?x=1", "203.0.113.7")[:2]
        ('https://203.0.113.7/in?x=1', {'Host': 'hooks.example.org'})
    """
    parts = urlsplit(url)
    host = parts.hostname or ""
    shown = f"[{address}]" if ":" in address else address
    netloc = f"{shown}:{parts.port}" if parts.port else shown
    host_header = parts.netloc.rpartition("@")[2]
    target = urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))
    return target, {"Host": host_header}, {"sni_hostname": host}


def send_checked(
    client: httpx.Client,
    method: str,
    url: str,
    destination: Destination,
    *,
    content: bytes | None = None,
    headers: dict[str, str] | None = None,
    stream: bool = False,
    max_redirects: int = 3,
) -> httpx.Response:
    """Send a request to the checked address of `url`'s host, and follow redirects the same
    way, each one checked anew (`client` must not follow them itself). EgressRefusedError if one
    is refused; httpx.TooManyRedirects past `max_redirects`."""
    for _ in range(max_redirects + 1):
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise httpx.UnsupportedProtocol("a redirect to something other than http(s)")
        target, host, extensions = pinned(url, destination(*host_and_port(url)))
        request = client.build_request(
            method,
            target,
            content=content,
            headers={**(headers or {}), **host},
            extensions=extensions,
        )
        response = client.send(request, stream=stream)
        location = response.headers.get("location")
        if response.status_code not in REDIRECT_STATUSES or location is None:
            return response
        response.close()
        url = urljoin(url, location)
        if response.status_code == 303 or (response.status_code in (301, 302) and method != "GET"):
            method, content = "GET", None  # as browsers do
    raise httpx.TooManyRedirects(f"more than {max_redirects} redirects")
