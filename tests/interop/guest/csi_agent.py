"""The test's hands inside the kernel VM, for the CSI node plugin test (stdlib only).

Runs in the guest with the host's Python (9p-shared). It listens on TCP ports that
run-guest forwards from the host's loopback (``--hostfwd``):

- the agent port takes one JSON request per connection and answers one JSON line:
  ``{"op": "sh", "cmd": ..., "timeout": S}`` -> ``{"rc", "out", "err"}``;
  ``{"op": "spawn", "argv": [...], "log": PATH}`` -> ``{"pid"}`` (a background
  process, reaped by the agent); ``{"op": "kill", "pid": N, "signal": 9}`` -> ``{"rc"}``
  once the process is gone; ``{"op": "shutdown"}`` ends the agent;
- each relay port (``--relay PORT=SOCKET``) passes the bytes of every connection to
  and from a unix socket in the guest, so a CSI client on the host talks to the node
  plugin's own unix socket, unchanged.

Prints ``CSI-AGENT-READY`` on the console once listening.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
from typing import Any

CHILDREN: dict[int, asyncio.subprocess.Process] = {}


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        with contextlib.suppress(Exception):
            writer.close()


def relay(socket_path: str) -> Any:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_unix_connection(socket_path)
        except OSError:
            writer.close()
            return
        await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))

    return handle


async def run_sh(cmd: str, timeout: float) -> dict[str, Any]:
    proc = await asyncio.create_subprocess_shell(
        cmd,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        return {"rc": 124, "out": "", "err": f"timed out after {timeout} s"}
    return {
        "rc": proc.returncode,
        "out": out.decode(errors="replace"),
        "err": err.decode(errors="replace"),
    }


async def spawn(argv: list[str], log: str) -> dict[str, Any]:
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv, stdin=asyncio.subprocess.DEVNULL, stdout=fd, stderr=fd, start_new_session=True
        )
    finally:
        os.close(fd)
    CHILDREN[proc.pid] = proc
    return {"pid": proc.pid}


async def kill(pid: int, signum: int) -> dict[str, Any]:
    proc = CHILDREN.pop(pid, None)
    if proc is None:
        return {"rc": None, "err": f"no child {pid}"}
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(signum)
    return {"rc": await proc.wait()}


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--relay", action="append", default=[])
    args = parser.parse_args()
    done = asyncio.Event()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = json.loads(await reader.readline())
            op = request["op"]
            if op == "sh":
                reply = await run_sh(request["cmd"], float(request.get("timeout", 120)))
            elif op == "spawn":
                reply = await spawn(request["argv"], request["log"])
            elif op == "kill":
                reply = await kill(int(request["pid"]), int(request.get("signal", signal.SIGKILL)))
            elif op == "shutdown":
                reply = {"ok": True}
                done.set()
            else:
                reply = {"error": f"unknown op {op!r}"}
        except Exception as exc:  # the host sees it
            reply = {"error": repr(exc)}
        writer.write(json.dumps(reply).encode() + b"\n")
        with contextlib.suppress(ConnectionError):
            await writer.drain()
        writer.close()

    servers = [await asyncio.start_server(handle, "0.0.0.0", args.port)]
    for spec in args.relay:
        port, _, socket_path = spec.partition("=")
        servers.append(await asyncio.start_server(relay(socket_path), "0.0.0.0", int(port)))
    print("CSI-AGENT-READY", flush=True)
    await done.wait()
    for server in servers:
        server.close()
    for pid in list(CHILDREN):
        await kill(pid, signal.SIGTERM)


if __name__ == "__main__":
    asyncio.run(main())
