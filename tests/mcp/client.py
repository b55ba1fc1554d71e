"""Drive an MCP server with the official MCP Python SDK's client (`mcp`, pinned in
tests/sdk/requirements.txt) and print ONE JSON object on stdout.

    client.py http <url> [--key K] [--mode M] --script <json>
        Streamable HTTP; sends `Authorization: Bearer K` when --key is given.
    client.py stdio [--mode M] --script <json> -- <command> [args...]
        Spawns the command as a stdio MCP server, passing this process's whole environment
        through (so ARES_URL / ARES_API_KEY reach it).

--mode is the SDK's connect mode: `auto` (the SDK default: probe `server/discover`, fall back
to the `initialize` handshake), `legacy` (the `initialize` handshake only) or a 2026-era
protocol version to adopt without a probe. Default: auto.

The script is a JSON list of steps:
    {"op": "list_tools"}
    {"op": "call", "name": "...", "arguments": {...}}

Output:
    {"server_name": ..., "protocol_version": ..., "steps": [...]}
with, per step,
    {"op": "list_tools", "tools": [{"name", "description", "input_schema"}]}
    {"op": "call", "name": ..., "is_error": bool, "text": <text contents joined with "\\n">,
     "structured": <structuredContent or null>}
    {"op": "call", "name": ..., "rpc_error": {"code": int, "message": str}}   (a JSON-RPC error;
                                                                              the script goes on)
When connecting or initializing fails (e.g. HTTP 401) it prints {"connect_error": "<message>"}
(with the HTTP status when there is one) and exits 0. The whole run times out after 60 s
(exit 1, with {"timeout": ...} on stdout).
"""

import argparse
import json
import os
import signal
import sys

import anyio
import httpx2

from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp.shared.exceptions import MCPError

TIMEOUT_SECONDS = 60


def emit(obj) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def parse_args(argv):
    command = []
    if "--" in argv:
        i = argv.index("--")
        argv, command = argv[:i], argv[i + 1 :]
    parser = argparse.ArgumentParser(description="Drive an MCP server; print one JSON object.")
    parser.add_argument("transport", choices=["http", "stdio"])
    parser.add_argument("url", nargs="?")
    parser.add_argument("--key")
    parser.add_argument("--mode", default="auto")
    parser.add_argument("--script", required=True)
    args = parser.parse_args(argv)
    if args.transport == "http" and not args.url:
        parser.error("http needs a URL")
    if args.transport == "stdio" and not command:
        parser.error("stdio needs `-- <command> [args...]`")
    args.command = command
    args.steps = json.loads(args.script)
    if not isinstance(args.steps, list):
        parser.error("--script must be a JSON list")
    return args


def describe(exc: BaseException) -> str:
    """A one-line message for a connect failure, with the HTTP status when one is known."""
    # anyio task groups wrap failures in ExceptionGroups: report the innermost causes.
    if isinstance(exc, BaseExceptionGroup):
        return "; ".join(describe(e) for e in exc.exceptions)
    parts = []
    if isinstance(exc, httpx2.HTTPStatusError):
        parts.append(f"HTTP {exc.response.status_code}")
    if isinstance(exc, MCPError):
        parts.append(f"MCP error {exc.code}: {exc.message}")
        if exc.data is not None:
            parts.append(f"data: {json.dumps(exc.data, default=str)}")
    else:
        parts.append(f"{type(exc).__name__}: {exc}")
    cause = exc.__cause__ or exc.__context__
    if cause is not None and cause is not exc:
        inner = describe(cause)
        if inner != " | ".join(parts):
            parts.append(f"caused by {inner}")
    return " | ".join(parts)


def text_of(result) -> str:
    return "\n".join(block.text for block in result.content if getattr(block, "type", None) == "text")


async def run_steps(client: Client, steps) -> list:
    out = []
    for step in steps:
        op = step.get("op")
        if op == "list_tools":
            tools, cursor = [], None
            while True:
                page = await client.list_tools(cursor=cursor, cache_mode="bypass")
                tools.extend(page.tools)
                cursor = page.next_cursor
                if not cursor:
                    break
            out.append(
                {
                    "op": "list_tools",
                    "tools": [
                        {"name": t.name, "description": t.description, "input_schema": t.input_schema}
                        for t in tools
                    ],
                }
            )
        elif op == "call":
            name = step["name"]
            try:
                result = await client.call_tool(name, step.get("arguments") or {})
            except MCPError as e:
                out.append({"op": "call", "name": name, "rpc_error": {"code": e.code, "message": e.message}})
                continue
            out.append(
                {
                    "op": "call",
                    "name": name,
                    "is_error": bool(result.is_error),
                    "text": text_of(result),
                    "structured": result.structured_content,
                }
            )
        else:
            raise ValueError(f"unknown op {op!r} in script")
    return out


async def main(args) -> int:
    http_errors: list[str] = []
    if args.transport == "http":
        headers = {"Authorization": f"Bearer {args.key}"} if args.key else None
        http_client = create_mcp_http_client(headers=headers)

        # The SDK turns an HTTP error status into a generic JSON-RPC error; keep the statuses
        # so a connect error can name them (e.g. "HTTP 401").
        async def record_status(response):
            if response.status_code >= 400:
                http_errors.append(f"HTTP {response.status_code} from {response.request.method} {response.url}")

        http_client.event_hooks["response"].append(record_status)
        target = streamable_http_client(args.url, http_client=http_client)
    else:
        target = StdioServerParameters(command=args.command[0], args=args.command[1:], env=dict(os.environ))

    client = Client(target, mode=args.mode, cache=None)
    connected = False
    try:
        async with client:
            connected = True
            info = client.server_info
            steps = await run_steps(client, args.steps)
            emit(
                {
                    "server_name": info.name if info is not None else None,
                    "protocol_version": client.protocol_version,
                    "steps": steps,
                }
            )
    except Exception as e:  # includes ExceptionGroup
        if connected:
            raise
        message = describe(e)
        if http_errors:
            message = f"{'; '.join(dict.fromkeys(http_errors))} | {message}"
        emit({"connect_error": message})
    finally:
        if args.transport == "http":
            await http_client.aclose()
    return 0


def entry() -> int:
    args = parse_args(sys.argv[1:])
    # A hard backstop in case cancellation itself hangs (e.g. on a wedged subprocess).
    signal.signal(signal.SIGALRM, lambda *_: (emit({"timeout": "hard timeout"}), os._exit(1)))
    signal.alarm(TIMEOUT_SECONDS + 10)

    async def bounded():
        with anyio.fail_after(TIMEOUT_SECONDS):
            return await main(args)

    try:
        return anyio.run(bounded)
    except TimeoutError:
        emit({"timeout": f"no result within {TIMEOUT_SECONDS}s"})
        return 1


if __name__ == "__main__":
    sys.exit(entry())
