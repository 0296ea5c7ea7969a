"""Discovery: ask a discovery controller which subsystems a target offers.

Connects to the well-known discovery NQN, reads the discovery log page (the header
first, for the number of records, then the whole page) and disconnects. A page that
changes while it is read (its generation counter moves) is read again.
"""

from __future__ import annotations

from mayastor.errors import Unavailable
from mayastor.nvmf.host._controller import MAX_TRANSFER, Controller
from mayastor.nvmf.host._options import ControllerOptions
from mayastor.nvmf.spec import (
    DISCOVERY_ENTRY_SIZE,
    DISCOVERY_HEADER_SIZE,
    DISCOVERY_NQN,
    DiscoveryLogPage,
    LogPageId,
    SpecError,
)

_ATTEMPTS = 3


async def discover(
    host: str, port: int, options: ControllerOptions | None = None
) -> DiscoveryLogPage:
    """The discovery log page of the target at `host`:`port`.

    Args:
        host, port: where the target's discovery service listens.
        options: host NQN, digests and timeouts (queues and keep alive do not apply).

    Returns:
        the decoded page: its generation counter and one entry per subsystem port.

    Raises:
        Unavailable: the target cannot be reached, or its page does not hold still or
            does not decode.
        ConnectRefused: the discovery subsystem does not allow our host NQN.
    """
    controller = Controller(host, port, DISCOVERY_NQN, options, name=f"{host}:{port}/discovery")
    await controller.connect()
    try:
        lid = LogPageId.DISCOVERY
        header = await controller.get_log_page(lid, DISCOVERY_HEADER_SIZE)
        genctr, numrec, _ = DiscoveryLogPage.decode_header(header)
        for _ in range(_ATTEMPTS):
            most = (MAX_TRANSFER - DISCOVERY_HEADER_SIZE) // DISCOVERY_ENTRY_SIZE
            length = DISCOVERY_HEADER_SIZE + min(numrec, most) * DISCOVERY_ENTRY_SIZE
            page = await controller.get_log_page(lid, length)
            again, count, _ = DiscoveryLogPage.decode_header(page)
            if (again, count) == (genctr, numrec):
                try:
                    if count > most:
                        raise SpecError(f"{count} records do not fit in one read")
                    return DiscoveryLogPage.decode(page)
                except SpecError as exc:
                    raise Unavailable(
                        f"{controller.name}: the discovery log page does not decode: {exc}"
                    ) from exc
            genctr, numrec = again, count
        raise Unavailable(f"{controller.name}: the discovery log page kept changing")
    finally:
        await controller.close()
