"""Shared by the test servers (mcp_fed_server.py, mcp_stdio_server.py): make an SDK MCPServer
advertise listChanged in its 2025 handshake."""

from typing import Any

from mcp.server.lowlevel.server import NotificationOptions, Server
from mcp.server.mcpserver import MCPServer


def advertise_list_changed(server: MCPServer) -> None:
    """The 2025 handshake advertises listChanged only when told to (NotificationOptions); the test
    servers do send list_changed notifications (add_tool), so say so. At 2026-07-28 the SDK derives
    the flags from subscriptions/listen being served."""
    lowlevel: Server[Any] = server._lowlevel_server  # noqa: SLF001 - no public hook for this
    advertise = NotificationOptions(prompts_changed=True, resources_changed=True, tools_changed=True)
    default_options = lowlevel.create_initialization_options
    lowlevel.create_initialization_options = lambda *a, **kw: default_options(  # type: ignore[method-assign]
        *a, **({"notification_options": advertise} | kw)
    )
