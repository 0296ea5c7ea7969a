"""A namespace of a remote NVMe-oF subsystem as a BlockDevice: ``nvmf://host:port/nqn``.

The device owns one `mayastor.nvmf.host.Controller` (its own admin and I/O queues)
and maps the BlockDevice calls onto NVM commands one to one: read, write, flush,
write zeroes, and unmap as Dataset Management (deallocate). Block size and capacity
come from Identify Namespace. A transfer larger than the controller takes in one
command (1 MiB, less when its MDTS says so) is split into commands sent together;
the call succeeds only if they all do.

Errors are those of the initiator: the `DeviceError` subclass the completion status
names (with the range of the I/O), `PathLost` when the path is gone (the I/O may or
may not have been carried out, which the nexus must assume), `IoTimeout`.

Reservations go to the remote controller as the host identifier of our Connect, when
its ONCS says it supports them (`supports_reservations`).

`unmap` must leave the range reading as zeroes: it deallocates only when the
namespace says deallocated blocks read as zeroes (DLFEAT), else it writes zeroes
(deallocating as it does so when the namespace allows).

Reads and writes submitted by callback (`submit_read`, `submit_write`) that fit one
command go to the initiator by callback too, while the path is up: no coroutine,
future or Task on their way (the nexus's fan-out to a remote child), and the device's
checks and counters are kept inline (no helper call per I/O).

The io-engine makes nvmf URIs openable with `register_nvmf`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import uuid as uuid_mod
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from mayastor.bdev.device import BLOCK_SIZES, BlockDevice, Buffer, IoDone, IoRequest
from mayastor.bdev.opener import DeviceOpener
from mayastor.bdev.uri import BdevUri, NvmfUri, parse_bdev_uri
from mayastor.errors import DeviceError, InvalidArgument, InvalidNamespace, NotFound
from mayastor.nvmf.auth import DhchapSecret
from mayastor.nvmf.host import (
    MAX_BLOCKS_PER_COMMAND,
    MAX_DSM_RANGES,
    Controller,
    ControllerOptions,
)
from mayastor.nvmf.spec import (
    DLFEAT_READS_ZEROES,
    DLFEAT_WRITE_ZEROES_DEALLOCATES,
    AcquireAction,
    ChangePtpl,
    DsmRange,
    IdentifyNamespace,
    NamespaceIdType,
    OptionalNvmCommands,
    RegisterAction,
    ReleaseAction,
    ReservationStatus,
    ReservationType,
)

DEFAULT_NSID = 1
_MAX_DSM_BLOCKS = 0xFFFF_FFFF
"""A Dataset Management range counts blocks in 32 bits."""
_UUID_NAMESPACE = uuid_mod.UUID("6d0f3b0e-3c1a-4b8e-8f4e-6e766d662d6e")


class NvmfDevice(BlockDevice):
    """Namespace `nsid` of a remote subsystem, reached through our initiator.

    Made by `open`. Attributes besides the BlockDevice ones:

    Attributes:
        controller: the connection to the remote controller (its state, options,
            and `last_error` when the path was lost).
        nsid: the namespace.
        namespace: its Identify Namespace data when it was opened.
    """

    driver = "nvmf"
    product_name = "NVMe disk"

    def __init__(
        self,
        name: str,
        controller: Controller,
        nsid: int,
        namespace: IdentifyNamespace,
        uuid: uuid_mod.UUID,
    ) -> None:
        super().__init__(name, uuid, namespace.block_size, namespace.nsze)
        self.controller = controller
        self.nsid = nsid
        self.namespace = namespace
        self._max_blocks = max(
            1, min(controller.max_transfer // self.block_size, MAX_BLOCKS_PER_COMMAND)
        )
        oncs = controller.identify.oncs
        dlfeat = namespace.dlfeat
        self._write_zeroes_supported = bool(oncs & OptionalNvmCommands.WRITE_ZEROES)
        self._deallocate_zeroes = (
            bool(oncs & OptionalNvmCommands.DATASET_MANAGEMENT)
            and dlfeat & 0x7 == DLFEAT_READS_ZEROES
        )
        self._write_zeroes_deallocates = bool(dlfeat & DLFEAT_WRITE_ZEROES_DEALLOCATES)

    @classmethod
    async def open(
        cls,
        uri: str | NvmfUri,
        *,
        name: str | None = None,
        nsid: int = DEFAULT_NSID,
        options: ControllerOptions | None = None,
    ) -> NvmfDevice:
        """Connect to the subsystem an nvmf URI names and open one of its namespaces.

        Args:
            uri: ``nvmf://host[:port]/nqn[?uuid=&hostnqn=&hostid=]`` or its parsed form.
            name: the device name; default the one Mayastor gives
                (``host:port/nqn`` + ``n1``).
            nsid: the namespace.
            options: host NQN, queues, digests, timeouts; the URI's ``hostnqn`` and
                ``hostid`` override the host NQN and the host identifier (a nexus
                opens its children with a host identifier of its own).

        Returns:
            the open device; its uuid is the URI's, else the namespace's UUID (or
            NGUID), else one derived from the NQN and namespace.

        Raises:
            InvalidArgument: not an nvmf URI, end-to-end protection asked for, or a
                namespace format we cannot use (block size, metadata).
            NotFound: the namespace does not exist or is not active.
            Unavailable, ConnectRefused, ConnectInvalidParameters: as
                `Controller.connect`.
        """
        parsed = parse_bdev_uri(uri) if isinstance(uri, str) else uri
        if not isinstance(parsed, NvmfUri):
            raise InvalidArgument(f"{parsed.uri!r} is not an nvmf:// URI")
        if parsed.reftag or parsed.guard:
            raise InvalidArgument(
                f"{parsed.uri!r}: end-to-end protection (reftag, guard) is not supported"
            )
        if not 0 < nsid < 0xFFFF_FFFF:
            raise InvalidArgument(f"{parsed.uri!r}: namespace {nsid} is outside 1..FFFFFFFEh")
        opts = options or ControllerOptions()
        if parsed.hostnqn is not None and parsed.hostnqn != opts.hostnqn:
            opts = dataclasses.replace(opts, hostnqn=parsed.hostnqn)
        if parsed.hostid is not None:
            opts = dataclasses.replace(opts, hostid=parsed.hostid)
        name = name or parsed.name
        controller = Controller(parsed.host, parsed.port, parsed.nqn, opts, name=name)
        await controller.connect()
        try:
            try:
                namespace = await controller.identify_namespace(nsid)
            except InvalidNamespace as exc:
                raise NotFound(
                    f"{parsed.uri!r}: namespace {nsid} of {parsed.nqn} does not exist"
                ) from exc
            _check_namespace(parsed, nsid, namespace)
            device_uuid = parsed.uuid or await _namespace_uuid(controller, nsid, namespace)
            return cls(name, controller, nsid, namespace, device_uuid)
        except BaseException:
            await controller.close()
            raise

    # ------------------------------------------------------------------ I/O hooks

    async def _read(self, lba: int, nblocks: int) -> Buffer:
        bs = self.block_size
        step = self._max_blocks
        if nblocks <= step:
            if not nblocks:
                return b""
            return await self.controller.read(self.nsid, lba, nblocks, nblocks * bs)
        out = bytearray(nblocks * bs)
        view = memoryview(out)
        controller, nsid = self.controller, self.nsid

        async def part(first: int, count: int) -> None:
            data = await controller.read(nsid, lba + first, count, count * bs)
            view[first * bs : (first + count) * bs] = data

        await _all(part(first, min(step, nblocks - first)) for first in range(0, nblocks, step))
        return out

    async def _write(self, lba: int, data: Buffer) -> None:
        view = data if isinstance(data, memoryview) else memoryview(data)
        if view.ndim != 1 or view.format != "B" or not view.contiguous:
            view = memoryview(view.tobytes()) if not view.contiguous else view.cast("B")
        bs = self.block_size
        nblocks = view.nbytes // bs
        step = self._max_blocks
        if nblocks <= step:
            if nblocks:
                await self.controller.write(self.nsid, lba, nblocks, view)
            return
        controller, nsid = self.controller, self.nsid
        await _all(
            controller.write(
                nsid,
                lba + first,
                min(step, nblocks - first),
                view[first * bs : (first + min(step, nblocks - first)) * bs],
            )
            for first in range(0, nblocks, step)
        )

    def submit_read(self, lba: int, nblocks: int, done: IoDone, ctx: Any) -> None:
        """`BlockDevice.submit_read` with the usual checks made inline: a read that
        fits one command goes to the initiator in this call."""
        if (
            0 < nblocks <= self._max_blocks
            and lba >= 0
            and lba + nblocks <= self.num_blocks
            and not self._closed
        ):
            self._inflight += 1
            request = IoRequest(self, done, ctx, lba, nblocks * self.block_size, False)
            if not self.controller.submit_read(
                self.nsid, lba, nblocks, request.nbytes, self._command_done, request
            ):
                BlockDevice._submit_read(self, lba, nblocks, request)
            return
        super().submit_read(lba, nblocks, done, ctx)

    def submit_write(self, lba: int, data: Buffer, done: IoDone, ctx: Any) -> None:
        """`BlockDevice.submit_write` with the usual checks made inline: a write that
        fits one command goes to the initiator in this call (the nexus's fan-out to a
        remote child)."""
        length = data.nbytes if type(data) is memoryview else len(data)
        nblocks, rest = divmod(length, self.block_size)
        if (
            0 < nblocks <= self._max_blocks
            and not rest
            and lba >= 0
            and lba + nblocks <= self.num_blocks
            and not self._closed
        ):
            self._inflight += 1
            request = IoRequest(self, done, ctx, lba, length, True)
            if not self.controller.submit_write(
                self.nsid, lba, nblocks, data, self._command_done, request
            ):
                BlockDevice._submit_write(self, lba, data, request)
            return
        super().submit_write(lba, data, done, ctx)

    def _submit_read(self, lba: int, nblocks: int, request: IoRequest) -> None:
        if not (
            nblocks <= self._max_blocks
            and self.controller.submit_read(
                self.nsid, lba, nblocks, request.nbytes, self._command_done, request
            )
        ):
            super()._submit_read(lba, nblocks, request)

    def _submit_write(self, lba: int, data: Buffer, request: IoRequest) -> None:
        nblocks = request.nbytes // self.block_size
        if not (
            nblocks <= self._max_blocks
            and self.controller.submit_write(
                self.nsid, lba, nblocks, data, self._command_done, request
            )
        ):
            super()._submit_write(lba, data, request)

    def _command_done(
        self, request: IoRequest, status: int, data: Buffer | None, error: DeviceError | None
    ) -> None:
        """A submitted read or write command ended: its status or transport error as the
        request's DeviceError, with the request's range."""
        if error is None and not status:
            request.finish(None if request.write else data, None)
            return
        nblocks = request.nbytes // self.block_size
        if error is None:
            what = "write" if request.write else "read"
            error = self.controller.io_error(status, what, request.lba, nblocks)
        elif error.lba is None:
            error.lba, error.nblocks = request.lba, nblocks
        request.finish(None, error)

    async def _flush(self) -> None:
        await self.controller.flush(self.nsid)

    async def _write_zeroes(self, lba: int, nblocks: int) -> None:
        await self._zero(lba, nblocks, deallocate=False)

    async def _zero(self, lba: int, nblocks: int, *, deallocate: bool) -> None:
        if not nblocks:
            return
        if not self._write_zeroes_supported:
            await super()._write_zeroes(lba, nblocks)
            return
        controller, nsid = self.controller, self.nsid
        step = MAX_BLOCKS_PER_COMMAND
        await _all(
            controller.write_zeroes(
                nsid, lba + first, min(step, nblocks - first), deallocate=deallocate
            )
            for first in range(0, nblocks, step)
        )

    async def _unmap(self, lba: int, nblocks: int) -> None:
        if not nblocks:
            return
        if not self._deallocate_zeroes:
            await self._zero(lba, nblocks, deallocate=self._write_zeroes_deallocates)
            return
        ranges = [
            DsmRange(first, min(_MAX_DSM_BLOCKS, lba + nblocks - first))
            for first in range(lba, lba + nblocks, _MAX_DSM_BLOCKS)
        ]
        controller, nsid = self.controller, self.nsid
        await _all(
            controller.deallocate(nsid, ranges[at : at + MAX_DSM_RANGES])
            for at in range(0, len(ranges), MAX_DSM_RANGES)
        )

    # ------------------------------------------------------------------ reservations

    @property
    def supports_reservations(self) -> bool:
        """True when the remote controller supports reservations (ONCS bit 5)."""
        return bool(self.controller.identify.oncs & OptionalNvmCommands.RESERVATIONS)

    @property
    def reservation_host(self) -> uuid_mod.UUID | None:
        """The host identifier of our Connect: who the remote namespace sees."""
        return self.controller.options.host_identifier

    async def reservation_register(
        self,
        action: RegisterAction,
        *,
        current_key: int = 0,
        new_key: int = 0,
        ignore_key: bool = False,
        ptpl: ChangePtpl = ChangePtpl.NO_CHANGE,
    ) -> None:
        await self.controller.reservation_register(
            self.nsid,
            action,
            current_key=current_key,
            new_key=new_key,
            ignore_key=ignore_key,
            ptpl=ptpl,
        )

    async def reservation_acquire(
        self,
        action: AcquireAction,
        rtype: ReservationType,
        *,
        current_key: int,
        preempt_key: int = 0,
    ) -> None:
        await self.controller.reservation_acquire(
            self.nsid, action, rtype, current_key=current_key, preempt_key=preempt_key
        )

    async def reservation_release(
        self, action: ReleaseAction, rtype: ReservationType, *, current_key: int
    ) -> None:
        await self.controller.reservation_release(self.nsid, action, rtype, current_key=current_key)

    async def reservation_report(self) -> ReservationStatus:
        return await self.controller.reservation_report(self.nsid)

    async def refresh_size(self) -> int:
        """Identify the namespace again and take its capacity now (it may have grown)."""
        namespace = await self.controller.identify_namespace(self.nsid)
        if namespace.nsze and namespace.block_size == self.block_size:
            self.namespace = namespace
            self.num_blocks = namespace.nsze
        return self.num_blocks

    async def _close(self) -> None:
        await self.controller.close()


def _check_namespace(parsed: NvmfUri, nsid: int, namespace: IdentifyNamespace) -> None:
    if not namespace.nsze:
        raise NotFound(f"{parsed.uri!r}: namespace {nsid} of {parsed.nqn} is not active")
    index = namespace.flbas & 0xF
    fmt = namespace.lbaf[index] if index < len(namespace.lbaf) else None
    if fmt is None or fmt.block_size not in BLOCK_SIZES or fmt.ms:
        raise InvalidArgument(
            f"{parsed.uri!r}: namespace {nsid} is formatted with "
            + (f"{fmt.block_size}-byte blocks and {fmt.ms} metadata bytes" if fmt else "no format")
            + f"; only {' or '.join(map(str, BLOCK_SIZES))}-byte blocks without metadata work"
        )


async def _namespace_uuid(
    controller: Controller, nsid: int, namespace: IdentifyNamespace
) -> uuid_mod.UUID:
    """The namespace's UUID descriptor, else its NGUID, else one derived from its name."""
    try:
        descriptors = await controller.namespace_id_descriptors(nsid)
    except DeviceError:
        descriptors = []
    for descriptor in descriptors:
        if descriptor.nidt == NamespaceIdType.UUID and len(descriptor.nid) == 16:
            return uuid_mod.UUID(bytes=descriptor.nid)
    if any(namespace.nguid):
        return uuid_mod.UUID(bytes=namespace.nguid)
    return uuid_mod.uuid5(_UUID_NAMESPACE, f"{controller.subnqn}/{nsid}")


async def _all(calls: Iterable[Awaitable[None]]) -> None:
    """Run the calls together; when one fails, wait for the others, then raise the first
    error (so nothing is still in flight when the device call returns)."""
    results = await asyncio.gather(*calls, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result


def register_nvmf(
    opener: DeviceOpener,
    *,
    hostnqn: str,
    options: ControllerOptions | None = None,
    replace: bool = False,
    dhchap_secret: Callable[[], Awaitable[DhchapSecret | None]] | None = None,
) -> None:
    """Make `opener` open ``nvmf://`` URIs as `NvmfDevice`s.

    Args:
        opener: the io-engine's opener.
        hostnqn: our host NQN (the io-engine passes
            ``nqn.2019-05.io.openebs:node-name:<node>``); a URI's ``hostnqn`` wins.
        options: queues, digests and timeouts for every device opened.
        replace: replace an nvmf opener registered before.
        dhchap_secret: asked before each open for the DH-HMAC-CHAP secret to prove
            (None: the one of `options`): the io-engine's secret comes from the core
            agent when it registers, and may arrive after the opener is made.

    Raises:
        InvalidArgument: `hostnqn` is not an NQN.
        AlreadyExists: nvmf is registered already and `replace` is False.
    """
    base = dataclasses.replace(options or ControllerOptions(), hostnqn=hostnqn)

    async def open_nvmf(parsed: BdevUri, name: str) -> BlockDevice:
        if not isinstance(parsed, NvmfUri):
            raise InvalidArgument(f"{parsed.uri!r} is not an nvmf:// URI")
        options = base
        if dhchap_secret is not None:
            secret = await dhchap_secret()
            if secret is not None:
                options = dataclasses.replace(base, dhchap_secret=secret)
        return await NvmfDevice.open(parsed, name=name, options=options)

    opener.register("nvmf", open_nvmf, replace=replace)
