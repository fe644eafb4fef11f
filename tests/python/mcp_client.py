"""MCP client for the end-to-end tests: the official Python SDK over Streamable HTTP.

Without --script: connects to --url, lists tools and calls one (default: multiply 42 x 17), then
prints one JSON object on stdout: {"server_name", "tools", "result", "is_error"} or, when the call
failed with a JSON-RPC error, {"server_name", "tools", "error": {"code", "message"}} (exit 0 either
way, so that tests can assert on it). With --mode it also prints "era" and "protocol_version".

--mode picks how the client connects: `legacy` forces the 2025-11-25 initialize handshake (what
the client always did, and still does without --mode); `auto` probes server/discover (2026-07-28)
and falls back to initialize when the server does not speak 2026.

--script runs several operations on one connection and prints one JSON object:
  {"era": "modern"|"legacy", "protocol_version", "server_name",
   "steps": [one result, or {"error": {"code", "message", "data"?}}, per step],
   "sampling_requests", "elicitation_requests", "notifications": {method: count}}
A step that fails is reported in its slot and the script goes on: a JSON-RPC error with its code,
anything else the SDK raised with code null. The steps, a JSON list (or @file):
  {"op": "list_tools"}                      -> {"tools": [names]}
  {"op": "call", "name", "args", "progress": true?}
                                            -> {"result": first text, "texts", "is_error",
                                                "structured"?, "progress": [{progress, total, message}]?}
  {"op": "list_prompts"}                    -> {"prompts": [names]}
  {"op": "get_prompt", "name", "args"}      -> {"messages": [{"role", "text"}]}
  {"op": "list_resources"}                  -> {"resources": [uris]}
  {"op": "list_resource_templates"}         -> {"templates": [uri templates]}
  {"op": "read_resource", "uri"}            -> {"contents": [{"uri", "text"}]}
  {"op": "ping"}                            -> {} (ping does not exist at 2026-07-28: an error there)
  {"op": "listen"}                          -> 2026: opens a subscriptions/listen stream for the
                                               list_changed notifications, kept open for the rest
                                               of the run ({"honored": filter}); 2025: {"stream":
                                               "GET"} (they come on the session's GET stream)
  {"op": "wait_notification", "method", "timeout_ms"?}
                                            -> {"received": bool}: waits until a notification with
                                               that method has arrived (on any stream)
  {"op": "sleep", "ms"}                     -> {}
Note the SDK itself sends a tools/list after the first successful call of a tool it has not listed
yet (to validate the result against the tool's outputSchema): count it when counting requests.
--sampling-reply TEXT answers sampling/createMessage with TEXT; --elicit-reply JSON accepts
elicitation requests with that content. Without them the client declares neither capability.
Either era: a 2025 server sends the request mid-call, a 2026 server answers input_required and the
SDK retries the call with the answers; the counts are the requests the client's callbacks answered.

A connection that cannot be set up because the server refused with a JSON-RPC error prints
{"era": null, ..., "connect_error": {"code", "message", "data"?}, "steps": []} and exits 3.
Anything else that fails exits 2 with the reason on stderr.
"""

import argparse
import asyncio
import json
import sys
from collections import Counter
from contextlib import AsyncExitStack
from typing import Any

import anyio
from mcp_types import (
    CreateMessageRequestParams,
    CreateMessageResult,
    ElicitRequestParams,
    ElicitResult,
    TextContent,
)
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

from mcp import Client, MCPError
from mcp.client.session import ClientRequestContext, IncomingMessage
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

CONNECT_ERROR_EXIT = 3


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", required=True, help="MCP Streamable HTTP endpoint")
    parser.add_argument("--header", action="append", default=[], help='"Name: value", repeatable')
    parser.add_argument("--call", default="multiply", help="tool to call (without --script)")
    parser.add_argument("--args", default='{"a": 42, "b": 17}', help="tool arguments as JSON (without --script)")
    parser.add_argument("--mode", choices=["auto", "legacy"], help="how to connect (default: legacy)")
    parser.add_argument("--script", help="JSON list of steps, or @path of a file holding it")
    parser.add_argument("--sampling-reply", metavar="TEXT", help="answer sampling/createMessage with TEXT")
    parser.add_argument("--elicit-reply", metavar="JSON", help="accept elicitation requests with this content")
    parser.add_argument("--timeout", type=float, default=30, help="seconds for the whole run")
    return parser.parse_args()


def headers_from(pairs: list[str]) -> dict[str, str]:
    headers = {}
    for pair in pairs:
        name, sep, value = pair.partition(":")
        if not sep:
            sys.exit(f"bad --header {pair!r}: expected 'Name: value'")
        headers[name.strip()] = value.strip()
    return headers


def load_script(text: str) -> list[dict[str, Any]]:
    if text.startswith("@"):
        with open(text[1:], encoding="utf-8") as file:
            text = file.read()
    steps = json.loads(text)
    if not isinstance(steps, list) or not all(isinstance(step, dict) and "op" in step for step in steps):
        sys.exit('--script: expected a JSON list of {"op": ...} objects')
    return steps


class Observed:
    """What the server asked of the client and told it, across the whole run."""

    def __init__(self) -> None:
        self.sampling_requests = 0
        self.elicitation_requests = 0
        self.notifications: Counter[str] = Counter()
        self.changed = anyio.Event()  # set (and replaced) whenever a notification arrives

    async def on_message(self, message: IncomingMessage) -> None:
        """message_handler: counts server notifications by method, whichever stream brought them."""
        method = getattr(message, "method", None)
        if isinstance(method, str):
            self.notifications[method] += 1
            self.changed.set()
            self.changed = anyio.Event()

    async def wait_for(self, method: str, timeout_s: float) -> bool:
        with anyio.move_on_after(timeout_s):
            while self.notifications[method] == 0:
                await self.changed.wait()
        return self.notifications[method] > 0


def callbacks(args: argparse.Namespace, observed: Observed) -> dict[str, Any]:
    """The sampling/elicitation callbacks --sampling-reply/--elicit-reply ask for (the SDK declares
    a capability only when its callback is given)."""
    found: dict[str, Any] = {}
    if args.sampling_reply is not None:
        reply = args.sampling_reply

        async def on_sampling(_ctx: ClientRequestContext, _params: CreateMessageRequestParams) -> CreateMessageResult:
            observed.sampling_requests += 1
            return CreateMessageResult(
                role="assistant",
                content=TextContent(type="text", text=reply),
                model="tollgate-test-client",
                stop_reason="endTurn",
            )

        found["sampling_callback"] = on_sampling
    if args.elicit_reply is not None:
        content = json.loads(args.elicit_reply)

        async def on_elicit(_ctx: ClientRequestContext, _params: ElicitRequestParams) -> ElicitResult:
            observed.elicitation_requests += 1
            return ElicitResult(action="accept", content=content)

        found["elicitation_callback"] = on_elicit
    return found


def error_of(error: Exception) -> dict[str, Any]:
    """A step's failure: the JSON-RPC error, or (code null) what the SDK raised instead."""
    if (found := mcp_error_in(error)) is not None:
        out: dict[str, Any] = {"code": found.error.code, "message": found.error.message}
        if found.error.data is not None:
            out["data"] = found.error.data
        return out
    return {"code": None, "message": f"{type(error).__name__}: {error}"}


def mcp_error_in(failure: BaseException) -> MCPError | None:
    """The JSON-RPC error behind a failure, also when the SDK's task groups wrapped it (a refused
    handshake surfaces as an ExceptionGroup holding the MCPError)."""
    if isinstance(failure, MCPError):
        return failure
    if isinstance(failure, BaseExceptionGroup):
        for inner in failure.exceptions:
            if (found := mcp_error_in(inner)) is not None:
                return found
    return None


def texts_of(content: list[Any]) -> list[str]:
    return [item.text for item in content if getattr(item, "type", "") == "text"]


class Runner:
    """Runs script steps on one connected Client."""

    def __init__(self, client: Client, observed: Observed, stack: AsyncExitStack) -> None:
        self.client = client
        self.observed = observed
        self.stack = stack  # listen streams stay open until the run ends

    @property
    def modern(self) -> bool:
        return self.client.protocol_version in MODERN_PROTOCOL_VERSIONS

    async def step(self, step: dict[str, Any]) -> dict[str, Any]:
        op = step["op"]
        handler = getattr(self, f"op_{op}", None)
        if handler is None:
            return {"error": {"code": None, "message": f"unknown op {op!r}"}}
        try:
            return await handler(step)
        except Exception as error:  # noqa: BLE001 - a failed step is reported, the script goes on
            return {"error": error_of(error)}

    async def op_list_tools(self, _step: dict[str, Any]) -> dict[str, Any]:
        result = await self.client.list_tools()
        return {"tools": [tool.name for tool in result.tools]}

    async def op_call(self, step: dict[str, Any]) -> dict[str, Any]:
        progress: list[dict[str, Any]] = []

        async def on_progress(value: float, total: float | None, message: str | None) -> None:
            progress.append({"progress": value, "total": total, "message": message})

        result = await self.client.call_tool(
            step["name"], step.get("args") or {}, progress_callback=on_progress if step.get("progress") else None
        )
        texts = texts_of(result.content)
        out: dict[str, Any] = {"result": texts[0] if texts else None, "texts": texts, "is_error": result.is_error}
        if result.structured_content is not None:
            out["structured"] = result.structured_content
        if step.get("progress"):
            out["progress"] = progress
        return out

    async def op_list_prompts(self, _step: dict[str, Any]) -> dict[str, Any]:
        result = await self.client.list_prompts()
        return {"prompts": [prompt.name for prompt in result.prompts]}

    async def op_get_prompt(self, step: dict[str, Any]) -> dict[str, Any]:
        result = await self.client.get_prompt(step["name"], step.get("args") or {})
        return {
            "messages": [
                {"role": message.role, "text": getattr(message.content, "text", None)} for message in result.messages
            ]
        }

    async def op_list_resources(self, _step: dict[str, Any]) -> dict[str, Any]:
        result = await self.client.list_resources()
        return {"resources": [str(resource.uri) for resource in result.resources]}

    async def op_list_resource_templates(self, _step: dict[str, Any]) -> dict[str, Any]:
        result = await self.client.list_resource_templates()
        return {"templates": [template.uri_template for template in result.resource_templates]}

    async def op_read_resource(self, step: dict[str, Any]) -> dict[str, Any]:
        result = await self.client.read_resource(step["uri"])
        return {"contents": [{"uri": str(item.uri), "text": getattr(item, "text", None)} for item in result.contents]}

    async def op_ping(self, _step: dict[str, Any]) -> dict[str, Any]:
        # Client.send_ping is deprecated (ping is gone at 2026-07-28); the session's is not.
        await self.client.session.send_ping()
        return {}

    async def op_listen(self, _step: dict[str, Any]) -> dict[str, Any]:
        if not self.modern:
            return {"stream": "GET"}
        subscription = await self.stack.enter_async_context(
            self.client.listen(tools_list_changed=True, prompts_list_changed=True, resources_list_changed=True)
        )

        # The events also reach Observed.on_message (the session tees them to the message
        # handler); draining the subscription keeps its backlog empty.
        async def drain() -> None:
            async for _event in subscription:
                pass

        task_group = await self.stack.enter_async_context(anyio.create_task_group())
        self.stack.callback(task_group.cancel_scope.cancel)
        task_group.start_soon(drain)
        return {"honored": subscription.honored.model_dump(by_alias=True, exclude_none=True)}

    async def op_wait_notification(self, step: dict[str, Any]) -> dict[str, Any]:
        received = await self.observed.wait_for(step["method"], step.get("timeout_ms", 5000) / 1000)
        return {"received": received}

    async def op_sleep(self, step: dict[str, Any]) -> dict[str, Any]:
        await anyio.sleep(step.get("ms", 0) / 1000)
        return {}


def describe(client: Client) -> dict[str, Any]:
    """Which era the connection ended up in, at which version, with which server."""
    version = client.protocol_version
    info = client.server_info
    return {
        "era": "modern" if version in MODERN_PROTOCOL_VERSIONS else "legacy",
        "protocol_version": version,
        "server_name": info.name if info is not None else None,
    }


async def run(args: argparse.Namespace) -> tuple[dict[str, Any], int]:
    observed = Observed()
    http = create_mcp_http_client(headers=headers_from(args.header))
    client = Client(
        streamable_http_client(args.url, http_client=http),
        mode=args.mode or "legacy",
        # Every list goes to the server: the tests look at what the gateway answers each time.
        cache=None,
        message_handler=observed.on_message,
        **callbacks(args, observed),
    )
    async with http, AsyncExitStack() as stack:
        try:
            await stack.enter_async_context(client)
        except Exception as failure:
            error = mcp_error_in(failure)
            if args.script is None or error is None:
                raise
            out = {"era": None, "protocol_version": None, "server_name": None, "connect_error": error_of(error)}
            return out | {"steps": []}, CONNECT_ERROR_EXIT
        if args.script is not None:
            runner = Runner(client, observed, stack)
            steps = [await runner.step(step) for step in load_script(args.script)]
            out = describe(client) | {"steps": steps}
            out["sampling_requests"] = observed.sampling_requests
            out["elicitation_requests"] = observed.elicitation_requests
            out["notifications"] = dict(observed.notifications)
            return out, 0
        return await single_call(client, args), 0


async def single_call(client: Client, args: argparse.Namespace) -> dict[str, Any]:
    """The original flow: list the tools, call one."""
    tools = await client.list_tools()
    info = client.server_info
    out: dict[str, Any] = {
        "server_name": info.name if info is not None else None,
        "tools": [tool.name for tool in tools.tools],
    }
    if args.mode is not None:
        out |= describe(client)
    try:
        result = await client.call_tool(args.call, json.loads(args.args))
    except MCPError as error:
        out["error"] = {"code": error.error.code, "message": error.error.message}
        return out
    texts = texts_of(result.content)
    out["result"] = texts[0] if texts else None
    out["is_error"] = bool(result.is_error)
    return out


def main() -> None:
    args = parse_args()
    try:
        out, code = asyncio.run(asyncio.wait_for(run(args), timeout=args.timeout))
    except Exception as error:  # noqa: BLE001 - report any failure to the test
        print(f"mcp_client failed: {type(error).__name__}: {error!r}", file=sys.stderr)
        sys.exit(2)
    print(json.dumps(out))
    sys.exit(code)


if __name__ == "__main__":
    main()
