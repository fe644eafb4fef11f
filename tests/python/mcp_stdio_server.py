"""A configurable MCP test server (official Python SDK) speaking MCP over stdio: newline-delimited
JSON-RPC on stdin/stdout, one connection per process. The stdio twin of mcp_fed_server.py, for the
gateway's stdio upstream tests (process spawning, restarts, stderr handling, both protocol eras).

Protocol eras (--era):
  both    what the SDK serves over stdio by default: the connection's first request decides its
          era. A request carrying the 2026-07-28 `_meta` envelope (the
          "io.modelcontextprotocol/protocolVersion" key; server/discover is such a request) opens a
          modern connection, where `initialize` is later refused with -32022; anything else
          (normally `initialize`) opens a 2025 handshake connection, where enveloped requests are
          later refused with -32600.
  legacy  a 2025-only server, as most stdio servers (npx packages) are today: it never heard of
          the 2026 envelope. Every request whose params._meta carries the envelope key, and every
          server/discover, is answered {"code": -32601, "message": "Method not found"} with the
          request's id, and does not decide the connection's era; everything else reaches the
          SDK's 2025 (initialize) handling. `initialize` itself always reaches the SDK, envelope or
          not (an old server ignores `_meta` it does not know, and the SDK never reads an
          initialize as modern). So a client probing server/discover first gets -32601 and can
          then `initialize` on the same process.

Start-up behaviour, for the gateway's robustness tests:
  --stderr-lines N     write N lines "noise <i>" (i = 1..N) to stderr before serving.
  --garbage            write one line that is not JSON-RPC ("this is not json") to stdout before
                       serving.
  --exit-after-start   exit with status 3 at once, before anything else (a server that keeps
                       dying).

Tools (both eras; the server name is --name, default "stdio"):
  echo(text)       -> "<name>:<text>"
  region(region)   -> "region=<region>" (`region` carries x-mcp-header: Region)
  pid()            -> this process's pid
  env(name)        -> the environment variable's value, or "<unset>"
  cwd()            -> the working directory
  exit(code=1)     the process exits with `code` at once; the call is never answered
  hang(seconds)    freezes the whole process (time.sleep on the event loop: not even ping is
                   answered meanwhile), then -> "woke"
  slow(ms)         awaits ms milliseconds (the server stays responsive), then -> "slept <ms>"
  progress(steps)  reports progress `steps` times, 0.2 s apart (when the call asked for progress),
                   then -> "done"
  ask(question)    sampling: asks the client's model, -> the reply text (2025: a
                   sampling/createMessage request mid-call; 2026: an input_required result the
                   client answers by retrying the call)
  add_tool(name)   registers a tool `name` (it answers "<name>:<tool>:<text>") and announces
                   notifications/tools/list_changed (2025: on the connection; 2026: on
                   subscriptions/listen streams) -> "<name>:added <tool>"

Stdout carries only the protocol once serving starts: the SDK's stdio transport points fd 1 at
stderr while it serves, so stray prints land on stderr.
"""

# No `from __future__ import annotations`: the SDK would then evaluate the tools' annotations in
# the module's globals, where the tools' local names (inside build_server) are not.
import argparse
import os
import sys
import time
from typing import Annotated, Any

import anyio
from pydantic import Field
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from mcp_types import (
    METHOD_NOT_FOUND,
    PROTOCOL_VERSION_META_KEY,
    CreateMessageResult,
    ErrorData,
    JSONRPCError,
    JSONRPCRequest,
    SamplingMessage,
    TextContent,
)
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS

from mcp.server.lowlevel.server import Server
from mcp.server.mcpserver import Context, MCPServer
from mcp_list_changed import advertise_list_changed
from mcp.server.mcpserver.resolve import Resolve, Sample
from mcp.server.stdio import stdio_server
from mcp.shared._stream_protocols import ReadStream, WriteStream
from mcp.shared.message import SessionMessage

GARBAGE_LINE = "this is not json"
EXIT_AFTER_START_STATUS = 3


# The resolver of `ask`: it returns a Sample marker and the SDK asks the client in the way the
# request's protocol version has. At 2025-11-25 that is a sampling/createMessage request sent to
# the client mid-call; at 2026-07-28 the call answers an input_required result and the client
# retries the call with inputResponses + requestState.
def ask_the_model(question: str) -> Sample:
    return Sample([SamplingMessage(role="user", content=TextContent(type="text", text=question))], max_tokens=64)


def build_server(server_name: str) -> MCPServer:
    """The MCPServer with the tools the stdio tests use."""
    server = MCPServer(server_name, version="1.0.0")

    advertise_list_changed(server)

    # Note: the SDK runs a plain `def` tool in a worker thread (anyio.to_thread); `async def`
    # tools run on the event loop. `hang` relies on that.

    @server.tool()
    def echo(text: str) -> str:
        """Echo the text back, prefixed with this server's name."""
        return f"{server_name}:{text}"

    @server.tool()
    def region(
        region: Annotated[str, Field(json_schema_extra={"x-mcp-header": "Region"})],
    ) -> str:
        """Answer "region=<region>"; a 2026-07-28 client mirrors `region` into the
        Mcp-Param-Region header (x-mcp-header), which the HTTP side must check."""
        return f"region={region}"

    @server.tool()
    def pid() -> str:
        """This server process's pid."""
        return str(os.getpid())

    @server.tool(name="env")
    def env_var(name: str) -> str:
        """The value of the environment variable `name` in this process, or "<unset>"."""
        return os.environ.get(name, "<unset>")

    @server.tool()
    def cwd() -> str:
        """This process's working directory."""
        return os.getcwd()

    @server.tool(name="exit")
    async def exit_process(code: int = 1) -> str:
        """Exit the process at once with status `code`; the call is never answered."""
        sys.stderr.flush()
        os._exit(code)

    @server.tool()
    async def hang(seconds: float) -> str:
        """Freeze the whole process for `seconds` (a blocking sleep on the event loop: nothing,
        not even ping, is answered meanwhile), then answer "woke"."""
        time.sleep(seconds)  # noqa: ASYNC251 - blocking the loop is the point
        return "woke"

    @server.tool()
    async def slow(ms: int) -> str:
        """Sleep for `ms` milliseconds without blocking the server, then answer."""
        await anyio.sleep(ms / 1000)
        return f"slept {ms}"

    @server.tool()
    async def progress(steps: int, ctx: Context) -> str:
        """Send `steps` progress notifications 0.2 s apart (when the call asked for progress),
        then "done"."""
        for step in range(1, steps + 1):
            await ctx.report_progress(step, steps, f"step {step}/{steps}")
            await anyio.sleep(0.2)
        return "done"

    # ask uses the SDK's resolver (ask_the_model): see there.
    @server.tool()
    def ask(question: str, reply: Annotated[CreateMessageResult, Resolve(ask_the_model)]) -> str:
        """Ask the client's model the question (sampling); answers with the reply text."""
        content = reply.content
        return content.text if isinstance(content, TextContent) else str(content)

    @server.tool()
    async def add_tool(name: str, ctx: Context) -> str:
        """Register a new tool `name` (it echoes "<server>:<name>:<text>") and announce
        notifications/tools/list_changed: on the connection at 2025, on every
        subscriptions/listen stream at 2026."""

        def added(text: str = "") -> str:
            return f"{server_name}:{name}:{text}"

        server.add_tool(added, name=name, description=f"added at runtime to {server_name}")
        if ctx.protocol_version in HANDSHAKE_PROTOCOL_VERSIONS:
            await ctx.request_context.session.send_tool_list_changed()
        await ctx.notify_tools_changed()
        return f"{server_name}:added {name}"

    return server


# ---------------------------------------------------------------------------------------------
# --era legacy: a filter between the SDK's stdio transport and its serving loop.


def unknown_to_a_2025_server(request: JSONRPCRequest) -> bool:
    """server/discover, or any request but `initialize` whose params._meta carries the 2026
    envelope key (a 2025 `_meta` only ever holds progressToken and the like)."""
    if request.method == "server/discover":
        return True
    if request.method == "initialize":
        return False
    meta = (request.params or {}).get("_meta")
    return isinstance(meta, dict) and PROTOCOL_VERSION_META_KEY in meta


async def refuse_2026(
    wire_in: ReadStream[SessionMessage | Exception],
    wire_out: WriteStream[SessionMessage],
    to_sdk: MemoryObjectSendStream[SessionMessage | Exception],
) -> None:
    """Relay what the client sends to the SDK's loop, answering the 2026 requests itself with
    -32601 (written through the SDK's own stdout writer) so that they never reach the loop and
    never decide the connection's era."""
    try:
        async with to_sdk:
            async for item in wire_in:
                if isinstance(item, SessionMessage) and isinstance(item.message, JSONRPCRequest):
                    request = item.message
                    if unknown_to_a_2025_server(request):
                        error = ErrorData(code=METHOD_NOT_FOUND, message="Method not found")
                        await wire_out.send(SessionMessage(JSONRPCError(jsonrpc="2.0", id=request.id, error=error)))
                        continue
                await to_sdk.send(item)
    except (anyio.BrokenResourceError, anyio.ClosedResourceError):
        pass  # the SDK's loop is gone: the connection is over


async def serve(args: argparse.Namespace) -> None:
    server = build_server(args.name)
    lowlevel: Server[Any] = server._lowlevel_server  # noqa: SLF001 - what run_stdio_async drives
    options = lowlevel.create_initialization_options()
    # stdio_server() claims fd 0/1 (the wire moves to private descriptors, fd 1 then points at
    # stderr) and restores them when the connection ends, at stdin's EOF.
    async with stdio_server() as (wire_in, wire_out):
        if args.era == "both":
            await lowlevel.run(wire_in, wire_out, options)
            return
        to_sdk: MemoryObjectSendStream[SessionMessage | Exception]
        from_filter: MemoryObjectReceiveStream[SessionMessage | Exception]
        to_sdk, from_filter = anyio.create_memory_object_stream[SessionMessage | Exception](0)
        async with anyio.create_task_group() as tg:
            tg.start_soon(refuse_2026, wire_in, wire_out, to_sdk)
            # Lowlevel.run serves both eras, but through the filter its first request is never a
            # 2026 one, so the connection is always a 2025 handshake connection.
            await lowlevel.run(from_filter, wire_out, options)
            tg.cancel_scope.cancel()


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--name", default="stdio", help="serverInfo name, also in tool answers")
    parser.add_argument("--era", choices=["both", "legacy"], default="both")
    parser.add_argument("--stderr-lines", type=int, default=0, metavar="N", help='write N "noise <i>" lines to stderr')
    parser.add_argument("--garbage", action="store_true", help="write one non-JSON-RPC line to stdout first")
    parser.add_argument("--exit-after-start", action="store_true", help=f"exit {EXIT_AFTER_START_STATUS} at once")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    if args.exit_after_start:
        sys.exit(EXIT_AFTER_START_STATUS)
    for i in range(1, args.stderr_lines + 1):
        sys.stderr.write(f"noise {i}\n")
    sys.stderr.flush()
    if args.garbage:
        # Before stdio_server() claims fd 1: afterwards sys.stdout leads to stderr.
        sys.stdout.write(GARBAGE_LINE + "\n")
        sys.stdout.flush()
    try:
        anyio.run(serve, args)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
