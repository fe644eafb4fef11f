"""The official conformance server over stdio (tests/conformance/stdio.toml runs it).

    stdio_everything.py SERVER_SCRIPT [--log-level LEVEL]

SERVER_SCRIPT is ../shared/conformance/py_everything_server.py: its tools, resources and
prompts are defined on a module-level `mcp` object and the script itself only serves them over
Streamable HTTP. Rather than copy or patch it, this imports it as a module (its `main` runs only
under `__main__`) and runs that same `mcp` object with the SDK's stdio transport. Stdout is the
wire: logging goes to stderr (LEVEL, default WARNING).
"""

import argparse
import importlib.util
import logging
import sys
from pathlib import Path


def load(script):
    path = Path(script).resolve()
    if not path.is_file():
        sys.exit(f"stdio_everything: no server script at {path}")
    spec = importlib.util.spec_from_file_location("conformance_everything_server", path)
    module = importlib.util.module_from_spec(spec)
    # Registered before it runs, as an import would: pydantic and typing resolve names through it.
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    server = getattr(module, "mcp", None)
    if server is None or not hasattr(server, "run"):
        sys.exit(f"stdio_everything: {path} defines no `mcp` server object")
    return server


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("server_script")
    parser.add_argument("--log-level", default="WARNING")
    args = parser.parse_args()
    logging.basicConfig(
        stream=sys.stderr,
        level=getattr(logging, args.log_level.upper()),
        format="%(asctime)s - %(name)s - %(levelname)s - %(message)s",
    )
    load(args.server_script).run(transport="stdio")


if __name__ == "__main__":
    main()
