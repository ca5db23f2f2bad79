"""The egress policy: which addresses Gust's outgoing HTTP may reach.

A workflow author chooses the URLs of ``std.http``, ``std.mistral_http``,
``gust.http_job`` and their status URLs, and an operator the webhooks'; the
requests leave from the Gust host, which can reach what the author can not
(its loopback services, the cloud metadata service at 169.254.169.254). So
every one of them goes through ``session()``, whose connections:

- resolve the host themselves and check EVERY address it resolves to;
- connect only to the addresses they checked, so a name that resolves to
  something else a moment later (DNS rebinding) changes nothing;
- are made anew for each redirect, which is therefore checked too.

An address is refused when it lies in a denied range and in no allowed
range; a host name listed in ALLOWED_HOSTS is allowed whatever it resolves
to. An IPv4-mapped IPv6 address (``::ffff:127.0.0.1``) is judged as the IPv4
address it maps to. Through an HTTP proxy the target URL's addresses are
checked before sending (the proxy itself connects) and the proxy's address
when connecting; SOCKS proxies are refused, as their connections can not be
checked. Mistral 23 has the same policy (``[action_std_http] denied_cidrs``,
``allowed_hosts``).

Settings, read at call time from ``GUST["EGRESS"]`` (override_settings
works); lists of strings, or one comma-separated string:

DENIED_CIDRS   ranges refused (default: loopback, link-local with the
               metadata service, 0.0.0.0/8 and ::, which reach this host)
ALLOWED_CIDRS  ranges allowed even inside a denied one (default: none)
ALLOWED_HOSTS  host names allowed; ``.example.com`` is the domain and its
               subdomains (default: none)
"""

from __future__ import annotations

import ipaddress
import socket
import sys
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import urlsplit, urlunsplit

import requests
from django.core.exceptions import ImproperlyConfigured
from requests.adapters import HTTPAdapter
from requests.utils import select_proxy
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, NameResolutionError, NewConnectionError
from urllib3.util import connection as urllib3_connection

from workflows import conf

DEFAULTS = {
    "DENIED_CIDRS": ["127.0.0.0/8", "::1/128", "169.254.0.0/16", "fe80::/10", "0.0.0.0/8", "::/128"],
    "ALLOWED_CIDRS": [],
    "ALLOWED_HOSTS": [],
}
# Named in refusals, so whoever reads one knows which knob decides.
ENV = {
    "DENIED_CIDRS": "GUST_EGRESS_DENIED_CIDRS",
    "ALLOWED_CIDRS": "GUST_EGRESS_ALLOWED_CIDRS",
    "ALLOWED_HOSTS": "GUST_EGRESS_ALLOWED_HOSTS",
}


class EgressRefused(Exception):
    """A request the policy does not allow; nothing was sent.

    Deliberately neither an OSError nor a ``requests.RequestException``: urllib3
    would retry an OSError as a connection failure, and callers must tell a
    refusal (retrying can not help) from a network error (it may).
    """

    def __init__(self, reason: str, url: str | None = None):
        super().__init__(reason)
        self.reason = reason
        self.url = url

    def __str__(self) -> str:
        return f"Refused to call {shown(self.url)}: {self.reason}" if self.url else f"Refused: {self.reason}"


def shown(url: str) -> str:
    """The URL for messages: no credentials, no query string (it may hold a token)."""
    parts = urlsplit(url)
    netloc = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit((parts.scheme, netloc, parts.path, "…" if parts.query else "", ""))


# --- the policy --------------------------------------------------------------

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class Policy:
    denied: tuple[Network, ...]
    allowed: tuple[Network, ...]
    allowed_hosts: tuple[str, ...]

    def allows_host(self, host: str) -> bool:
        host = host.lower().rstrip(".")
        return any(host == h or (h.startswith(".") and (host.endswith(h) or host == h[1:])) for h in self.allowed_hosts)

    def refusal(self, address: str, host: str | None = None) -> str | None:
        """Why connecting to ``address`` (numeric, as getaddrinfo returns it)
        is refused, or None when it is allowed. ``host`` names it in the reason."""
        ip = ipaddress.ip_address(address)
        mapped = getattr(ip, "ipv4_mapped", None)
        candidates = [ip, mapped] if mapped else [ip]
        if any(c in net for c in candidates for net in self.allowed):
            return None
        for c in candidates:
            for net in self.denied:
                if c in net:
                    what = f"address {address}" + (f" (IPv4 {c})" if c is mapped else "")
                    resolved = f"{host} resolves to {address}; " if host and host.strip("[]") != address else ""
                    return (
                        f"{resolved}{what} is in the denied range {net} ({ENV['DENIED_CIDRS']}; "
                        f"{ENV['ALLOWED_CIDRS']} or {ENV['ALLOWED_HOSTS']} can allow it)"
                    )
        return None


def _items(name: str, value) -> tuple[str, ...]:
    if isinstance(value, str):
        value = value.split(",")
    try:
        return tuple(v.strip() for v in value if v and v.strip())
    except TypeError:
        raise ImproperlyConfigured(f"EGRESS[{name!r}] must be a list of strings or a comma-separated string") from None


@lru_cache(maxsize=16)
def _parse(denied: tuple[str, ...], allowed: tuple[str, ...], hosts: tuple[str, ...]) -> Policy:
    def networks(name, values):
        try:
            return tuple(ipaddress.ip_network(v, strict=False) for v in values)
        except ValueError as exc:
            raise ImproperlyConfigured(f"EGRESS[{name!r}] ({ENV[name]}): {exc}") from None

    return Policy(
        networks("DENIED_CIDRS", denied),
        networks("ALLOWED_CIDRS", allowed),
        tuple(h.lower().rstrip(".") for h in hosts),
    )


def policy() -> Policy:
    """The policy of ``GUST["EGRESS"]`` as it is now. Raises ImproperlyConfigured
    for a range that is not one."""
    policy = {**DEFAULTS, **conf.get("EGRESS")}
    return _parse(*(_items(k, policy[k]) for k in ("DENIED_CIDRS", "ALLOWED_CIDRS", "ALLOWED_HOSTS")))


def checked_addresses(host: str, port: int) -> list[tuple]:
    """getaddrinfo results for (host, port), every one of them allowed.

    Raises EgressRefused naming the first refused address (one bad address
    refuses the host: which one a connection would use is not ours to pick),
    and socket.gaierror when the name does not resolve.
    """
    host = host.strip("[]")
    rules = policy()
    infos = socket.getaddrinfo(host, port, urllib3_connection.allowed_gai_family(), socket.SOCK_STREAM)
    if not rules.allows_host(host):
        for *_, sockaddr in infos:
            reason = rules.refusal(sockaddr[0], host)
            if reason:
                raise EgressRefused(reason)
    return infos


# --- requests / urllib3 plumbing ---------------------------------------------


class _CheckedConnection:
    """urllib3 connection that dials only addresses the policy allowed.

    Replaces ``HTTPConnection._new_conn``: the name is resolved once, here,
    and the socket connects to those very addresses (numeric, so urllib3's
    create_connection does not look the name up again).
    """

    def _new_conn(self) -> socket.socket:
        try:
            sock, error = None, None
            for *_, sockaddr in checked_addresses(self._dns_host, self.port):
                try:
                    sock = urllib3_connection.create_connection(
                        (sockaddr[0], self.port),
                        self.timeout,
                        source_address=self.source_address,
                        socket_options=self.socket_options,
                    )
                    break
                except OSError as exc:  # the next address, as create_connection does
                    error = exc
            if sock is None:
                raise error or OSError("getaddrinfo returns an empty list")
        except socket.gaierror as e:
            raise NameResolutionError(self.host, self, e) from e
        except TimeoutError as e:
            raise ConnectTimeoutError(
                self, f"Connection to {self.host} timed out. (connect timeout={self.timeout})"
            ) from e
        except OSError as e:
            raise NewConnectionError(self, f"Failed to establish a new connection: {e}") from e
        sys.audit("http.client.connect", self, self.host, self.port)
        return sock


class CheckedHTTPConnection(_CheckedConnection, HTTPConnection):
    pass


class CheckedHTTPSConnection(_CheckedConnection, HTTPSConnection):
    pass


class CheckedHTTPConnectionPool(HTTPConnectionPool):
    ConnectionCls = CheckedHTTPConnection


class CheckedHTTPSConnectionPool(HTTPSConnectionPool):
    ConnectionCls = CheckedHTTPSConnection


_POOLS = {"http": CheckedHTTPConnectionPool, "https": CheckedHTTPSConnectionPool}


class CheckedAdapter(HTTPAdapter):
    """A requests adapter whose every connection, proxied or not, is checked;
    a refusal raises EgressRefused with the URL that was refused."""

    def init_poolmanager(self, *args, **kwargs) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = _POOLS

    def proxy_manager_for(self, proxy: str, **proxy_kwargs):
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        manager.pool_classes_by_scheme = _POOLS  # the connection to the proxy is checked
        return manager

    def send(self, request, stream=False, timeout=None, verify=True, cert=None, proxies=None):
        proxy = select_proxy(request.url, proxies)
        try:
            if proxy:
                self._check_proxied(request.url, proxy)
            try:
                return super().send(request, stream=stream, timeout=timeout, verify=verify, cert=cert, proxies=proxies)
            except EgressRefused as exc:
                if proxy:  # what the connection was refused is the proxy
                    exc.reason = f"proxy {shown(proxy)}: {exc.reason}"
                raise
        except EgressRefused as exc:
            exc.url = exc.url or request.url
            raise

    @staticmethod
    def _check_proxied(url: str, proxy: str) -> None:
        """The proxy connects to the target, not us: check where it is sent."""
        if proxy.lower().startswith("socks"):  # SOCKSProxyManager has its own connection classes
            raise EgressRefused(f"SOCKS proxy {shown(proxy)}: its connections can not be checked")
        parts = urlsplit(url)
        try:
            checked_addresses(parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80))
        except socket.gaierror:
            pass  # a name only the proxy resolves


def session() -> requests.Session:
    """A requests Session whose http:// and https:// requests follow the policy."""
    s = requests.Session()
    adapter = CheckedAdapter()
    s.mount("http://", adapter)
    s.mount("https://", adapter)
    return s
