"""The daemon's local control socket: one JSON request a line, one JSON reply a line.

Only local users reach it (a Unix socket, mode 0660, owned by the service's
group); it is how `parkedge status`, `points`, `read`, `write`, `mode`, `plan`
and `forecast` talk to the running daemon.

Reply: ``{"ok": true, "result": ..., "text": "..."}`` or
``{"ok": false, "error": "one line", "bad_input": bool}``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

Handler = Callable[[dict[str, Any]], Awaitable[tuple[Any, str | None]]]
MAX_REQUEST_BYTES = 1 << 20


class BadRequest(Exception):
    """The request itself is wrong (unknown point, bad value): exit 2 for the CLI."""


def _prepare(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileNotFoundError):
        path.unlink()  # a socket left by a killed daemon


async def serve(path: Path, handlers: dict[str, Handler]) -> asyncio.AbstractServer:
    _prepare(path)

    async def on_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            line = await reader.readline()
            reply = await _dispatch(line, handlers)
            writer.write(json.dumps(reply, default=str).encode() + b"\n")
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_unix_server(on_client, path=str(path), limit=MAX_REQUEST_BYTES)
    os.chmod(path, 0o660)
    return server


async def _dispatch(line: bytes, handlers: dict[str, Handler]) -> dict[str, Any]:
    try:
        req = json.loads(line)
        if not isinstance(req, dict):
            raise BadRequest("request must be a JSON object")
        handler = handlers.get(str(req.get("cmd")))
        if handler is None:
            raise BadRequest(f"unknown command {req.get('cmd')!r}")
        result, text = await handler(req)
        return {"ok": True, "result": result, "text": text}
    except (BadRequest, json.JSONDecodeError, ValueError, KeyError) as e:
        return {"ok": False, "error": str(e), "bad_input": True}
    except Exception as e:  # the socket must answer, whatever a handler did
        return {"ok": False, "error": f"{type(e).__name__}: {e}", "bad_input": False}


def request(path: Path, req: dict[str, Any], *, timeout_s: float = 10.0) -> dict[str, Any]:
    """Blocking client for the CLI."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout_s)
        s.connect(str(path))
        s.sendall(json.dumps(req).encode() + b"\n")
        buf = b""
        while not buf.endswith(b"\n"):
            chunk = s.recv(65536)
            if not chunk:
                break
            buf += chunk
    if not buf.endswith(b"\n"):
        # The daemon went away mid-request (stopping, or killed): a connection problem,
        # not a malformed reply.
        raise ConnectionError("the daemon closed the connection without replying")
    reply: dict[str, Any] = json.loads(buf)
    return reply
