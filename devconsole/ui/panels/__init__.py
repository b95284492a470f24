"""The dashboard's four live panels; each reads ``ServerState`` on the app's tick."""

from __future__ import annotations

from .loop import LoopPanel
from .reloads import ReloadsPanel
from .requests import RequestsPanel
from .sockets import SocketsPanel

__all__ = ["LoopPanel", "ReloadsPanel", "RequestsPanel", "SocketsPanel"]
