"""Sequential `tools/call`s of an MCP server with the official Python SDK, timed one by one: the
client side of `benches/stdio.rs`, which runs it against the stdio test server both directly and
through the gateway, so that both paths pay the same client-side SDK cost.

  --direct       starts tests/python/mcp_stdio_server.py (with this interpreter) and speaks MCP
                 with it over its stdin and stdout (mcp.client.stdio, StdioServerParameters);
  --url URL      speaks Streamable HTTP to URL (e.g. a gateway route federating that server).

--mode: `auto` probes server/discover and, the server speaking 2026-07-28, calls statelessly;
`legacy` does the 2025-11-25 initialize handshake and calls within that session. Either way: one
connection (one server process directly), `tools/list` once (the SDK lists a tool before its
first result anyway), --warmup calls not timed, then --calls calls of --tool with {"text": ...},
each timed from the call to its parsed result (time.perf_counter_ns), its answer checked.

Prints one JSON object: {"mode", "sdk_version", "era", "protocol_version", "calls", "warmup",
"errors", "p50_ms", "p90_ms", "p99_ms", "mean_ms", "max_ms", "client_cpu_us" (this process's CPU
time over the timed calls: the client's own; directly, the server is another process),
"latencies_us": [every call, in order]}.
Exits 2 with the reason on stderr when the connection or a check fails.
"""

import argparse
import asyncio
import importlib.metadata
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from mcp_types.version import MODERN_PROTOCOL_VERSIONS

from mcp import Client
from mcp.client.stdio import StdioServerParameters

SERVER_SCRIPT = Path(__file__).resolve().parent.parent / "tests" / "python" / "mcp_stdio_server.py"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--direct", action="store_true", help="run the stdio test server and call it over stdio")
    where.add_argument("--url", help="MCP Streamable HTTP endpoint")
    parser.add_argument("--name", default="stdio", help="the stdio server's --name (direct), in its answers")
    parser.add_argument("--tool", default="echo", help="tool to call (through a gateway: <server>__echo)")
    parser.add_argument("--mode", choices=["auto", "legacy"], default="auto")
    parser.add_argument("--calls", type=int, default=500, help="timed calls")
    parser.add_argument("--warmup", type=int, default=50, help="calls before the timed ones")
    parser.add_argument("--timeout", type=float, default=300, help="seconds for the whole run")
    return parser.parse_args()


def percentile(sorted_ns: list[int], p: float) -> float:
    """The latency below which a fraction p of the calls fall, in ms (nearest rank, as the Rust
    side's `Figures::percentile`)."""
    if not sorted_ns:
        return 0.0
    return sorted_ns[round((len(sorted_ns) - 1) * p)] / 1e6


async def run(args: argparse.Namespace) -> dict[str, Any]:
    if args.direct:
        server: Any = StdioServerParameters(command=sys.executable, args=[str(SERVER_SCRIPT), "--name", args.name])
    else:
        server = args.url
    expected = f"{args.name}:ping"
    latencies: list[int] = []
    async with Client(server, mode=args.mode, cache=None) as client:
        await client.list_tools()

        async def call() -> int:
            started = time.perf_counter_ns()
            result = await client.call_tool(args.tool, {"text": "ping"})
            elapsed = time.perf_counter_ns() - started
            text = result.content[0].text if result.content else None  # type: ignore[union-attr]
            if result.is_error or text != expected:
                raise RuntimeError(f"{args.tool} answered {text!r} (is_error {result.is_error}), not {expected!r}")
            return elapsed

        for _ in range(args.warmup):
            await call()
        cpu_started = time.process_time_ns()
        for _ in range(args.calls):
            latencies.append(await call())
        client_cpu_ns = time.process_time_ns() - cpu_started
        version = client.protocol_version
    ordered = sorted(latencies)
    return {
        "mode": args.mode,
        "sdk_version": importlib.metadata.version("mcp"),
        "era": "modern" if version in MODERN_PROTOCOL_VERSIONS else "legacy",
        "protocol_version": version,
        "calls": len(latencies),
        "warmup": args.warmup,
        "errors": 0,
        "p50_ms": percentile(ordered, 0.5),
        "p90_ms": percentile(ordered, 0.9),
        "p99_ms": percentile(ordered, 0.99),
        "mean_ms": statistics.fmean(ordered) / 1e6 if ordered else 0.0,
        "max_ms": percentile(ordered, 1.0),
        "client_cpu_us": client_cpu_ns // 1000,
        "latencies_us": [ns // 1000 for ns in latencies],
    }


def main() -> None:
    args = parse_args()
    try:
        out = asyncio.run(asyncio.wait_for(run(args), timeout=args.timeout))
    except Exception as error:  # noqa: BLE001 - the benchmark reports any failure
        print(f"stdio_calls failed: {type(error).__name__}: {error!r}", file=sys.stderr)
        sys.exit(2)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
