"""Where a secret may be sent: the rules for endpoint and base-URL settings.

A proxy sends the key's secret to whatever endpoint its config names, so an endpoint is as
sensitive as the secret itself. Only `https` URLs naming a host are accepted: no user info (a
`user:pw@` prefix hides the real host from a reader), no query or fragment (they are not part
of an API root and can smuggle parameters), and no private, loopback or link-local address
(cloud metadata services and internal hosts are exactly what a redirected secret or a
server-side request would be aimed at) unless the operator allows them with
`KEYVAULT_ALLOW_PRIVATE_ENDPOINTS=true`, for self-hosted servers on an internal network. A
setting may also restrict its hosts (Azure's endpoint must be an Azure OpenAI host), and
`KEYVAULT_ALLOWED_ENDPOINT_HOSTS` adds hosts to every such list.

Host names are checked as written; they are not resolved here (Keyvault's own outbound calls
check the address they connect to). See docs/decisions.md.
"""

import ipaddress
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import URLValidator

_url_validator = URLValidator(schemes=["https"])

# Names that never leave the machine or the local network (RFC 6761, RFC 6762, RFC 8375 and
# the conventional internal suffixes).
_LOCAL_NAMES = ("localhost",)
_LOCAL_SUFFIXES = (".localhost", ".local", ".internal", ".home.arpa", ".localdomain", ".lan")


def private_endpoints_allowed() -> bool:
    return bool(getattr(settings, "KEYVAULT_ALLOW_PRIVATE_ENDPOINTS", False))


def extra_allowed_hosts() -> tuple[str, ...]:
    return tuple(
        host.strip().lower().rstrip(".")
        for host in getattr(settings, "KEYVAULT_ALLOWED_ENDPOINT_HOSTS", ())
        if host.strip()
    )


def host_matches(host: str, pattern: str) -> bool:
    """`pattern` is a host name, or `*.suffix` for any host under that suffix (not the suffix
    itself)."""
    if pattern.startswith("*."):
        return host.endswith(pattern[1:]) and len(host) > len(pattern) - 1
    return host == pattern


# IPv6 forms that carry an IPv4 address in their last 32 bits and reach it: IPv4-compatible
# (deprecated, ::/96) and NAT64 (RFC 6052 and RFC 8215).
_IPV4_CARRYING = tuple(
    ipaddress.ip_network(net) for net in ("::/96", "64:ff9b::/96", "64:ff9b:1::/48")
)


def is_private_address(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """Anything but a globally routable unicast address: private, loopback, link-local,
    shared (CGNAT), reserved, multicast, unspecified, and IPv4 addresses inside IPv6 forms."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is None and any(address in net for net in _IPV4_CARRYING):
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None:
            return is_private_address(embedded)
    return not address.is_global or address.is_multicast


def _host_address(host: str):
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def endpoint_problem(value: str, *, label: str, allowed_hosts: tuple[str, ...] = ()) -> str | None:
    """Why `value` may not be an endpoint, in one sentence; None when it may.

    `allowed_hosts` restricts the host to those patterns (plus the operator's additions); an
    empty tuple allows any public host.
    """
    # Checked as a proxy would read it: clients fold full-width digits, soft hyphens and other
    # Unicode in host names into ASCII (full-width 169.254… is 169.254…), so only ASCII is accepted
    # (international names in their punycode form) and what is checked is what is contacted.
    if not value.isascii():
        return f"{label} must be written in ASCII (use the xn-- form of international names)."
    try:
        _url_validator(value)
    except ValidationError:
        return f"{label} must be an https:// URL."
    parts = urlsplit(value)
    if parts.scheme.lower() != "https":
        return f"{label} must be an https:// URL."
    try:
        parts.port  # noqa: B018 - raises for a port outside 0-65535
    except ValueError:
        return f"{label} has an invalid port."
    if "@" in parts.netloc:
        return f"{label} cannot contain a user name or password."
    if "?" in value or "#" in value:
        return f"{label} cannot contain a query string or fragment."
    host = (parts.hostname or "").lower().rstrip(".")
    if not private_endpoints_allowed():
        address = _host_address(host)
        if address is not None and is_private_address(address):
            return (
                f"{label} points to a private, loopback or link-local address; the operator "
                "can allow those with KEYVAULT_ALLOW_PRIVATE_ENDPOINTS."
            )
        if host in _LOCAL_NAMES or host.endswith(_LOCAL_SUFFIXES):
            return (
                f"{label} names a local host; the operator can allow those with "
                "KEYVAULT_ALLOW_PRIVATE_ENDPOINTS."
            )
    if allowed_hosts:
        patterns = (*allowed_hosts, *extra_allowed_hosts())
        if not any(host_matches(host, pattern) for pattern in patterns):
            return (
                f"{label} must be a host under {' or '.join(allowed_hosts)} (the operator can "
                "add hosts with KEYVAULT_ALLOWED_ENDPOINT_HOSTS)."
            )
    return None
