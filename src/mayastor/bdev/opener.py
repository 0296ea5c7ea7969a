"""Opening block devices from URIs: a table of openers, one per scheme.

The io-engine owns one `DeviceOpener` (never a module global, so two io-engines can
live in one test process). A default instance opens malloc, aio, uring and bare paths;
the layers above register the schemes that are theirs: nvmf (a remote namespace,
through our initiator) and bdev (a device this io-engine already has).

A bare path (``/dev/sdb``, a pool disk given as a path) opens with the fastest driver
that works here: uring, or aio where io_uring is not available (logged once per
opener, with the reason). Its uuid is the one aio always gave it, whichever driver
serves it.
"""

from __future__ import annotations

import dataclasses
import logging
import uuid as uuid_mod
from collections.abc import Awaitable, Callable

from mayastor.bdev._file_device import default_uuid
from mayastor.bdev._io_uring import UringUnavailable
from mayastor.bdev.aio import DEFAULT_AIO_THREADS, AioDevice
from mayastor.bdev.device import BlockDevice
from mayastor.bdev.malloc import MallocDevice
from mayastor.bdev.uri import (
    SCHEMES,
    BdevUri,
    FileUri,
    LoopbackUri,
    MallocUri,
    NvmfUri,
    parse_bdev_uri,
)
from mayastor.bdev.uring import DEFAULT_URING_ENTRIES, UringDevice
from mayastor.errors import AlreadyExists, FailedPrecondition, InvalidArgument

log = logging.getLogger(__name__)

OpenFn = Callable[[BdevUri, str], Awaitable[BlockDevice]]
"""An opener: (the parsed URI, the name to give the device) -> an open device."""

_CANONICAL = {"nvmf+tcp": "nvmf", "loopback": "bdev"}


class DeviceOpener:
    """Which function opens which URI scheme, and opening through them.

    Args:
        defaults: register the malloc, aio and uring openers.
        aio_threads: worker threads of each aio device (its queue depth).
        uring_entries: submission queue entries of each uring device.
        check_path: called with the path of every file or block device before it is
            opened (aio, uring, a bare path); it raises to refuse the path (the
            io-engine's --disk-allow). None: every path may be opened.
    """

    def __init__(
        self,
        *,
        defaults: bool = True,
        aio_threads: int = DEFAULT_AIO_THREADS,
        uring_entries: int = DEFAULT_URING_ENTRIES,
        check_path: Callable[[str], None] | None = None,
    ) -> None:
        self.aio_threads = aio_threads
        self.uring_entries = uring_entries
        self.check_path = check_path
        self.uring_refused: str | None = None
        """Why bare paths open with aio here (io_uring refused), once that was found."""
        self._openers: dict[str, OpenFn] = {}
        if defaults:
            self.register("malloc", self._open_malloc)
            self.register("aio", self._open_aio)
            self.register("uring", self._open_uring)

    @property
    def schemes(self) -> tuple[str, ...]:
        """The schemes that can be opened now."""
        return tuple(sorted(self._openers))

    def register(self, scheme: str, opener: OpenFn, *, replace: bool = False) -> None:
        """Make `opener` the one for `scheme`.

        Args:
            scheme: one the grammar knows (`mayastor.bdev.uri.SCHEMES`); aliases
                (nvmf+tcp, loopback) register their canonical scheme.
            opener: an async function of (parsed URI, device name).
            replace: allow replacing an opener already registered.

        Raises:
            InvalidArgument: the grammar does not know the scheme.
            AlreadyExists: the scheme has an opener and `replace` is False.
        """
        if scheme not in SCHEMES:
            raise InvalidArgument(
                f"cannot register an opener for unknown scheme {scheme!r}; known: "
                f"{', '.join(SCHEMES)}"
            )
        scheme = _CANONICAL.get(scheme, scheme)
        if scheme in self._openers and not replace:
            raise AlreadyExists(f"an opener for {scheme}:// is already registered")
        self._openers[scheme] = opener

    async def open(
        self, uri: str, *, name: str | None = None, hostid: uuid_mod.UUID | None = None
    ) -> BlockDevice:
        """Open the device a URI names.

        Args:
            uri: a bdev URI or a bare absolute path (see `mayastor.bdev.uri`).
            name: the device name; default the one Mayastor gives (`BdevUri.name`).
            hostid: the host identifier the device presents to NVMe reservations
                (nvmf and bdev URIs; others have no host identity and ignore it);
                it wins over the URI's ``hostid``.

        Returns:
            the open device, with `uri` set to the URI as given.

        Raises:
            InvalidArgument: the URI is malformed (see `parse_bdev_uri`) or the name is empty.
            FailedPrecondition: no opener is registered for the scheme here.
            MayastorError: whatever the driver raises (NotFound for a missing path, ...).
        """
        parsed = parse_bdev_uri(uri)
        if hostid is not None and isinstance(parsed, NvmfUri | LoopbackUri):
            parsed = dataclasses.replace(parsed, hostid=hostid)
        opener = self._openers.get(parsed.scheme)
        if opener is None:
            raise FailedPrecondition(
                f"cannot open {uri!r}: no driver for {parsed.scheme}:// is set up in this "
                f"io-engine (it opens {', '.join(self.schemes) or 'nothing'})"
            )
        if name is not None and not name:
            raise InvalidArgument(f"cannot open {uri!r}: the device name is empty")
        device = await opener(parsed, name or parsed.name)
        device.uri = uri
        return device

    # ------------------------------------------------------------ default openers

    async def _open_malloc(self, parsed: BdevUri, name: str) -> BlockDevice:
        assert isinstance(parsed, MallocUri)
        return MallocDevice(name, parsed.num_blocks, parsed.block_size, parsed.uuid)

    async def _open_aio(self, parsed: BdevUri, name: str) -> BlockDevice:
        assert isinstance(parsed, FileUri)
        if self.check_path is not None:
            self.check_path(parsed.path)
        if parsed.uri == parsed.path and self.uring_refused is None:
            try:
                return await UringDevice.open(
                    parsed.path,
                    name=name,
                    uuid=default_uuid("aio", parsed.path),
                    entries=self.uring_entries,
                )
            except UringUnavailable as exc:
                self.uring_refused = str(exc)
                log.warning("bare paths open with aio, not uring: %s", exc)
        return await AioDevice.open(
            parsed.path,
            name=name,
            block_size=parsed.block_size,
            uuid=parsed.uuid,
            threads=self.aio_threads,
        )

    async def _open_uring(self, parsed: BdevUri, name: str) -> BlockDevice:
        assert isinstance(parsed, FileUri)
        if self.check_path is not None:
            self.check_path(parsed.path)
        return await UringDevice.open(
            parsed.path,
            name=name,
            block_size=parsed.block_size,
            uuid=parsed.uuid,
            entries=self.uring_entries,
        )
