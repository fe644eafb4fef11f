"""MCP client for the end-to-end tests: the official Python SDK over Streamable HTTP.

Connects to --url, initializes, lists tools and calls one (default: multiply 42 x 17), then prints
one JSON object on stdout. A JSON-RPC error from the call is reported in the JSON (exit 0) so that
tests can assert on it; anything else that fails exits non-zero with the reason on stderr.
"""

import argparse
import asyncio
import json
import sys

from mcp import ClientSession, MCPError
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", required=True, help="MCP Streamable HTTP endpoint")
    parser.add_argument("--header", action="append", default=[], help='"Name: value", repeatable')
    parser.add_argument("--call", default="multiply", help="tool to call")
    parser.add_argument("--args", default='{"a": 42, "b": 17}', help="tool arguments as JSON")
    return parser.parse_args()


def headers_from(pairs: list[str]) -> dict[str, str]:
    headers = {}
    for pair in pairs:
        name, sep, value = pair.partition(":")
        if not sep:
            sys.exit(f"bad --header {pair!r}: expected 'Name: value'")
        headers[name.strip()] = value.strip()
    return headers


async def run(args: argparse.Namespace) -> dict:
    http = create_mcp_http_client(headers=headers_from(args.header))
    async with http, streamable_http_client(args.url, http_client=http) as (read, write):
        async with ClientSession(read, write) as session:
            init = await session.initialize()
            tools = await session.list_tools()
            out = {
                "server_name": init.server_info.name if hasattr(init, "server_info") else init.serverInfo.name,
                "tools": [tool.name for tool in tools.tools],
            }
            try:
                result = await session.call_tool(args.call, json.loads(args.args))
            except MCPError as error:
                out["error"] = {"code": error.error.code, "message": error.error.message}
                return out
            texts = [item.text for item in result.content if getattr(item, "type", "") == "text"]
            out["result"] = texts[0] if texts else None
            out["is_error"] = bool(getattr(result, "is_error", getattr(result, "isError", False)))
            return out


def main() -> None:
    args = parse_args()
    try:
        out = asyncio.run(asyncio.wait_for(run(args), timeout=30))
    except Exception as error:  # noqa: BLE001 - report any failure to the test
        print(f"mcp_client failed: {type(error).__name__}: {error!r}", file=sys.stderr)
        sys.exit(2)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
