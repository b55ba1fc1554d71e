"""A small Streamable HTTP MCP server, written with the official MCP Python SDK (`mcp`, pinned
in tests/sdk/requirements.txt), for the tests that have ARES connect to a remote MCP server.

    $(tests/sdk/python_env.sh python) tests/mcp/http_server.py --port N [--json-response]

Listens on http://127.0.0.1:N/mcp and prints one line `ready N` on stdout (flushed) once it
accepts connections. Logs only warnings and errors (on stderr). Stateful (hands out an
Mcp-Session-Id on initialize); POST replies are SSE streams (text/event-stream) unless
--json-response, which makes them plain application/json. Requests must accept both
application/json and text/event-stream (406 otherwise); a Host header other than
127.0.0.1[:N] / localhost[:N] gets 421 (the SDK's DNS-rebinding protection).

Tools:
    echo(text: str) -> str          the text back
    add(a: int, b: int) -> int      a + b
    sleep(seconds: float) -> str    sleeps, then "slept"
    fail(message: str) -> str       a tool error: the result has isError: true, text = message

Environment:
    MCP_REQUIRE_TOKEN=<token>   every HTTP request must carry `Authorization: Bearer <token>`,
                                or it gets HTTP 401
"""

import argparse
import hmac
import os
import sys

import anyio
import uvicorn

from mcp.server import MCPServer
from mcp.server.mcpserver.exceptions import ToolError

server = MCPServer("ares-test-http", version="1.0.0", log_level="WARNING")


@server.tool()
def echo(text: str) -> str:
    """Return the text unchanged."""
    return text


@server.tool()
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


@server.tool()
async def sleep(seconds: float) -> str:
    """Sleep for the given number of seconds, then return "slept"."""
    await anyio.sleep(seconds)
    return "slept"


@server.tool()
def fail(message: str) -> str:
    """Always fails: the call result has isError true and its text is the message."""
    raise ToolError(message)


class RequireBearer:
    """ASGI middleware: HTTP requests without `Authorization: Bearer <token>` get a 401."""

    def __init__(self, app, token: str):
        self.app = app
        self.expected = f"Bearer {token}".encode()

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            given = dict(scope["headers"]).get(b"authorization", b"")
            if not hmac.compare_digest(given, self.expected):
                body = b'{"error":"unauthorized"}'
                await send(
                    {
                        "type": "http.response.start",
                        "status": 401,
                        "headers": [
                            (b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode()),
                            (b"www-authenticate", b"Bearer"),
                        ],
                    }
                )
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)


class ReadyServer(uvicorn.Server):
    """Prints `ready <port>` once the socket is listening."""

    async def startup(self, sockets=None):
        await super().startup(sockets=sockets)
        if self.started:
            print(f"ready {self.config.port}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument(
        "--json-response",
        action="store_true",
        help="answer POSTs with application/json bodies instead of text/event-stream (SSE)",
    )
    args = parser.parse_args()

    app = server.streamable_http_app(streamable_http_path="/mcp", host="127.0.0.1", json_response=args.json_response)
    token = os.environ.get("MCP_REQUIRE_TOKEN")
    if token:
        app = RequireBearer(app, token)
    config = uvicorn.Config(app, host="127.0.0.1", port=args.port, log_level="warning", access_log=False)
    ReadyServer(config).run()
    sys.exit(0)


if __name__ == "__main__":
    main()
