"""The `mayastor` command: run one io-engine until SIGTERM or SIGINT."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys

from mayastor.engine.config import EngineConfig, config_from_args, configure_logging
from mayastor.engine.io_engine import IoEngine
from mayastor.errors import MayastorError

log = logging.getLogger("mayastor")


async def serve(config: EngineConfig) -> None:
    """Start an io-engine, wait for SIGTERM/SIGINT, stop it cleanly."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    engine = IoEngine(config)
    await engine.start()
    try:
        await stop.wait()
    finally:
        await engine.stop()


def main(argv: list[str] | None = None) -> int:
    config = config_from_args(argv)
    configure_logging(config.log_level)
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency, but optional at heart
        runner = asyncio.run
    else:
        runner = uvloop.run
    try:
        runner(serve(config))
    except MayastorError as exc:
        log.error("%s", exc)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
