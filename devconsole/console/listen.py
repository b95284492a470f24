"""The listening address (runserver's ``addrport``) and the socket the console owns.

The console binds once and keeps the socket across reloads: every server child
adopts it, so a connection arriving while a child restarts waits in the
backlog instead of being refused.
"""

from __future__ import annotations

import errno
import ipaddress
import re
import socket
from dataclasses import dataclass

# The same grammar as runserver's ``naiveip_re``.
_ADDRPORT = re.compile(
    r"""^(?:
(?P<addr>
    (?P<ipv4>\d{1,3}(?:\.\d{1,3}){3}) |         # IPv4 address
    (?P<ipv6>\[[a-fA-F0-9:]+\]) |               # IPv6 address
    (?P<fqdn>[a-zA-Z0-9-]+(?:\.[a-zA-Z0-9-]+)*) # FQDN
):)?(?P<port>\d+)$""",
    re.X,
)

DEFAULT_ADDR = "127.0.0.1"
DEFAULT_ADDR_IPV6 = "::1"
DEFAULT_PORT = 8000
BACKLOG = 128


class AddressError(ValueError):
    """An addrport runserver would reject; the message is one line."""


class BindError(OSError):
    """The address cannot be bound; the message is one line for the user."""


@dataclass(frozen=True)
class ListenAddress:
    host: str
    port: int
    ipv6: bool = False

    @property
    def display(self) -> str:
        host = f"[{self.host}]" if self.ipv6 else self.host
        if host == "0":
            host = "0.0.0.0"
        return f"{host}:{self.port}"

    @property
    def is_loopback(self) -> bool:
        """Whether only this machine can connect (127.0.0.0/8, ``::1``,
        ``localhost``); 0.0.0.0, ``::`` and a LAN address are reachable from
        the network."""
        host = self.host.lower().rstrip(".")
        if host == "localhost" or host.endswith(".localhost"):
            return True
        try:
            ip = ipaddress.ip_address("0.0.0.0" if host == "0" else host.partition("%")[0])
        except ValueError:
            return False  # a name other than localhost may resolve anywhere
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        return ip.is_loopback

    @property
    def url(self) -> str:
        return f"http://{self.display}/"

    @property
    def addrport(self) -> str:
        """The argument runserver itself takes for this address."""
        return self.display


def parse_addrport(text: str | None, *, ipv6: bool = False) -> ListenAddress:
    """Parse ``[addr:]port`` like runserver does; 127.0.0.1:8000 by default."""
    if not text:
        return ListenAddress(DEFAULT_ADDR_IPV6 if ipv6 else DEFAULT_ADDR, DEFAULT_PORT, ipv6)
    match = _ADDRPORT.match(text)
    if match is None:
        raise AddressError(f'"{text}" is not a valid port number or address:port pair')
    port = int(match["port"])
    if not 0 < port < 65536:
        raise AddressError(f'"{text}": port {port} is out of range (1-65535)')
    addr = match["addr"]
    if match["ipv6"]:
        return ListenAddress(addr[1:-1], port, True)
    if match["ipv4"] and any(int(part) > 255 for part in addr.split(".")):
        raise AddressError(f'"{text}" is not a valid IPv4 address')
    if ipv6 and addr and not match["fqdn"]:
        raise AddressError(f'"{addr}" is not a valid IPv6 address')
    if not addr:
        addr = DEFAULT_ADDR_IPV6 if ipv6 else DEFAULT_ADDR
    return ListenAddress(addr, port, ipv6)


def bind(address: ListenAddress) -> socket.socket:
    """Bind and listen on ``address``, or raise :class:`BindError` saying why."""
    family = socket.AF_INET6 if address.ipv6 else socket.AF_INET
    host = "0.0.0.0" if address.host == "0" else address.host
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, address.port))
        sock.listen(BACKLOG)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise BindError(
                exc.errno,
                f"{address.display} is already in use; try another port, e.g. devconsole {_suggest(address)}",
            ) from None
        if exc.errno == errno.EACCES:
            raise BindError(exc.errno, f"no permission to listen on {address.display}; use a port above 1023") from None
        if exc.errno == errno.EADDRNOTAVAIL:
            raise BindError(exc.errno, f"{address.host} is not an address of this machine") from None
        if isinstance(exc, socket.gaierror):
            raise BindError(errno.EINVAL, f"cannot resolve {address.host!r}: {exc.strerror}") from None
        raise BindError(exc.errno, f"cannot listen on {address.display}: {exc.strerror}") from None
    sock.set_inheritable(True)
    return sock


def _suggest(address: ListenAddress) -> str:
    """A nearby free port, as an addrport the user can paste."""
    family = socket.AF_INET6 if address.ipv6 else socket.AF_INET
    host = "0.0.0.0" if address.host == "0" else address.host
    for port in range(address.port + 1, min(address.port + 50, 65535)):
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            try:
                probe.bind((host, port))
            except OSError:
                continue
        return ListenAddress(address.host, port, address.ipv6).display
    return ListenAddress(address.host, 0, address.ipv6).display.replace(":0", ":PORT")
