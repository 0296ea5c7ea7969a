"""One call at a time per volume: a second call while one is in flight is ABORTED.

The CSI spec lets a plugin refuse a call for a volume that already has one in flight
(the CO retries with back-off), which keeps two stages or a stage and an unstage of
one volume from interleaving. The set lives in memory only: a plugin that was killed
holds nothing when it starts again, and every call is idempotent anyway.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from mayastor.csi.errors import Aborted


class VolumeLocks:
    """Volumes with a call in flight."""

    def __init__(self) -> None:
        self._busy: dict[str, str] = {}

    @contextlib.contextmanager
    def hold(self, volume: str, call: str) -> Iterator[None]:
        """Mark `volume` busy with `call` for the block.

        Raises:
            Aborted: another call holds the volume (named in the message).
        """
        other = self._busy.get(volume)
        if other is not None:
            raise Aborted(f"{other} is in flight for this volume; retry later", volume=volume)
        self._busy[volume] = call
        try:
            yield
        finally:
            del self._busy[volume]

    def busy(self, volume: str) -> bool:
        return volume in self._busy
