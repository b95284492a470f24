"""What a server child and the console's debug broker say to each other.

One Unix ``SOCK_SEQPACKET`` connection per server generation, to the socket
named by :data:`SOCKET_ENV`: every message is one JSON object in one packet
(so a pty's master fd sent with SCM_RIGHTS arrives with the message that
explains it). Child → console: ``hello`` (generation, pid), ``waiting`` (a
thread waits its turn for the terminal), ``begin`` (a debugging session, the
pty master attached), ``end``, ``notice`` (one line for the user).
Console → child: ``postmortem`` (token).
"""

from __future__ import annotations

import json
from typing import Any

#: The environment variable that names the broker's socket.
SOCKET_ENV = "DEVCONSOLE_DEBUG_SOCKET"
#: The largest message (bytes); longer fields are cut before sending.
MAX_MESSAGE = 16384


def encode(message: dict[str, Any]) -> bytes:
    data = json.dumps(message, ensure_ascii=True).encode()
    if len(data) > MAX_MESSAGE:
        raise ValueError(f"debugger message too long ({len(data)} bytes)")
    return data


def decode(data: bytes) -> dict[str, Any] | None:
    """The message in ``data``, or None if it is not one."""
    try:
        message = json.loads(data.decode("utf-8", "replace"))
    except ValueError:
        return None
    return message if isinstance(message, dict) and isinstance(message.get("op"), str) else None
