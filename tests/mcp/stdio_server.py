"""A small MCP server over stdio, written with the official MCP Python SDK (`mcp`, pinned in
tests/sdk/requirements.txt), for the tests that have ARES spawn and drive a stdio MCP server.

    $(tests/sdk/python_env.sh python) tests/mcp/stdio_server.py

Tools:
    echo(text: str) -> str          the text back
    pid() -> int                    this process's pid (a restart shows as a new pid)
    crash() -> str                  exits at once with status 3, without replying
    sleep(seconds: float) -> str    sleeps, then "slept"
    fail(message: str) -> str       a tool error: the result has isError: true, text = message
    rpc_error(code: int, message: str) -> str
                                    a JSON-RPC error response with that code and message
    add_tool() -> str               registers `late(x: int) -> int` (x*2), sends
                                    notifications/tools/list_changed, then returns "added"

Environment:
    MCP_STARTUP_MARKER=<file>   append one line (the pid) to <file> at start (tests count starts)
    MCP_EXPECT=<value>          refuse to start (exit 2, message on stderr) unless MCP_GIVEN
                                equals <value> (tests check that config `env` reaches the process)
"""

import os
import sys

import anyio

from mcp.server import MCPServer, NotificationOptions
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from mcp.shared.exceptions import MCPError
from mcp.server.stdio import stdio_server


def check_environment() -> None:
    expect = os.environ.get("MCP_EXPECT")
    if expect is not None and os.environ.get("MCP_GIVEN") != expect:
        print(
            f"stdio_server: MCP_GIVEN={os.environ.get('MCP_GIVEN')!r} does not equal "
            f"MCP_EXPECT={expect!r}; refusing to start",
            file=sys.stderr,
            flush=True,
        )
        sys.exit(2)
    marker = os.environ.get("MCP_STARTUP_MARKER")
    if marker:
        with open(marker, "a", encoding="utf-8") as f:
            f.write(f"{os.getpid()}\n")


server = MCPServer("ares-test-stdio", version="1.0.0", log_level="WARNING")


@server.tool()
def echo(text: str) -> str:
    """Return the text unchanged."""
    return text


@server.tool()
def pid() -> int:
    """Return the server process's pid."""
    return os.getpid()


@server.tool()
def crash() -> str:
    """Exit the server process immediately (status 3) without replying."""
    sys.stdout.flush()
    os._exit(3)


@server.tool()
async def sleep(seconds: float) -> str:
    """Sleep for the given number of seconds, then return "slept"."""
    await anyio.sleep(seconds)
    return "slept"


@server.tool()
def fail(message: str) -> str:
    """Always fails: the call result has isError true and its text is the message."""
    raise ToolError(message)


@server.tool()
def rpc_error(code: int, message: str) -> str:
    """Always fails with a JSON-RPC error response carrying this code and message."""
    raise MCPError(code, message)


def late(x: int) -> int:
    """Return x doubled (registered at run time by add_tool)."""
    return x * 2


@server.tool()
async def add_tool(ctx: Context) -> str:
    """Register the tool `late` and notify the client that the tool list changed."""
    server.add_tool(late, name="late")
    # In mcp 2.x, ctx.notify_tools_changed() only reaches `subscriptions/listen` streams
    # (the 2026-07-28 protocol); a session that came in through the initialize handshake
    # (as ARES's does) gets notifications/tools/list_changed from the session itself.
    await ctx.session.send_tool_list_changed()
    await ctx.notify_tools_changed()
    return "added"


async def main() -> None:
    lowlevel = server._lowlevel_server  # MCPServer.run_stdio_async, with tools.listChanged: true
    options = lowlevel.create_initialization_options(NotificationOptions(tools_changed=True))
    async with stdio_server() as (read_stream, write_stream):
        await lowlevel.run(read_stream, write_stream, options)


if __name__ == "__main__":
    check_environment()
    anyio.run(main)
