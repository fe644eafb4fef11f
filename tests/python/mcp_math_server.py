"""A real MCP server from the official Python SDK (Streamable HTTP), used by the end-to-end
tests as an upstream: tools `add` and `multiply`, on 127.0.0.1:--port at /mcp."""

import argparse

from mcp.server.mcpserver import MCPServer


def number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    port = parser.parse_args().port

    server = MCPServer("python-math")

    @server.tool()
    def add(a: float, b: float) -> str:
        """Add two numbers."""
        return number(a + b)

    @server.tool()
    def multiply(a: float, b: float) -> str:
        """Multiply two numbers."""
        return number(a * b)

    server.run("streamable-http", host="127.0.0.1", port=port, streamable_http_path="/mcp")


if __name__ == "__main__":
    main()
