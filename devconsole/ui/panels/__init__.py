"""The dashboard's four live panels; each reads ``ServerState`` on the app's tick."""

from __future__ import annotations

from devconsole.ui.panels.loop import LoopPanel
from devconsole.ui.panels.reloads import ReloadsPanel
from devconsole.ui.panels.requests import RequestsPanel
from devconsole.ui.panels.sockets import SocketsPanel

__all__ = ["LoopPanel", "ReloadsPanel", "RequestsPanel", "SocketsPanel"]
