"""Running the node's tools (nvme-cli, blkid, mkfs, mount, ...) without blocking the loop.

Each tool runs as a child process with no terminal and no input, so a tool that would
ask a question (mkfs over an existing file system) gets end-of-file and says no. A
failure becomes the `CsiError` class the caller names, carrying the volume, the step
(the tool) and the device, with the tool's own words.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass

from mayastor.csi.errors import CsiError, FailedPrecondition, Internal

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 120.0
"""Seconds a tool may run; mkfs of a large volume over the network is the slowest."""


@dataclass(frozen=True)
class Result:
    """What a tool did: its exit status and its output, decoded."""

    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        """stderr and stdout together, trimmed: what to show when it failed."""
        return " ".join(part.strip() for part in (self.stderr, self.stdout) if part.strip())


def find_tool(name: str) -> str | None:
    """The path of tool `name` on PATH (and the sbin folders), or None."""
    path = os.environ.get("PATH", "") + ":/usr/local/sbin:/usr/sbin:/sbin"
    return shutil.which(name, path=path)


async def run(
    argv: Sequence[str],
    *,
    volume: str | None = None,
    device: str | None = None,
    step: str | None = None,
    error: type[CsiError] = Internal,
    check: bool = True,
    timeout: float = DEFAULT_TIMEOUT,
) -> Result:
    """Run a tool and wait for it.

    Args:
        argv: the tool and its arguments; the tool is looked up with `find_tool`.
        volume, device, step: for the error and the log (step defaults to the tool).
        error: the error class for a failure.
        check: raise when the exit status is not 0 (else return it).
        timeout: seconds before the tool is killed.

    Raises:
        FailedPrecondition: the tool is not installed on this node.
        CsiError: (`error`) it failed or timed out.
    """
    if step is None:
        step = " ".join(argv[:2]) if argv[0] in ("nvme", "btrfs") else argv[0]
    tool = find_tool(argv[0])
    if tool is None:
        raise FailedPrecondition(
            f"{argv[0]} is not installed on this node", volume=volume, step=step, device=device
        )
    proc = await asyncio.create_subprocess_exec(
        tool,
        *argv[1:],
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise error(
            f"{argv[0]} did not finish within {timeout:.0f} s",
            volume=volume,
            step=step,
            device=device,
        ) from None
    except asyncio.CancelledError:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        raise
    result = Result(
        tuple(argv),
        proc.returncode or 0,
        out.decode(errors="replace"),
        err.decode(errors="replace"),
    )
    log.debug("%s -> %d %s", " ".join(argv), result.returncode, result.output)
    if check and result.returncode != 0:
        raise error(
            f"{' '.join(argv)} exited with {result.returncode}: {result.output or 'no output'}",
            volume=volume,
            step=step,
            device=device,
        )
    return result
