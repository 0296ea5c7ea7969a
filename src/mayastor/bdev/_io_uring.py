"""An io_uring instance driven from an asyncio event loop, by raw system calls.

Why not a binding: the `liburing` wheel on PyPI is built for CPUs with
AVX-512 and dies with SIGILL on others (this project's build machine among them), so
the ring is set up here with io_uring_setup/io_uring_enter/io_uring_register through
ctypes and its shared memory is read and written with `struct` (field layouts of
<linux/io_uring.h>).

How it runs, all on the event-loop thread:

* `submit_cb` writes an SQE into the ring and returns; a callback hears the result
  (`submit` is the same for a coroutine, with a future). The first submission of
  a loop iteration schedules one `io_uring_enter` for everything prepared in that
  iteration (batched submission, no thread per I/O). A batch goes out before the
  iteration ends once it holds at least `_EARLY_BATCH` SQEs and as many as the kernel
  still has in flight: the device is then about to run dry (measured: +40..70% IOPS at
  QD32 over end-of-iteration batches alone, while one SQE a call costs a system call,
  in a VM a doorbell exit, per I/O);
* the loop watches the ring's own file descriptor (`loop.add_reader`): it is readable
  while completions wait, so no eventfd is signalled by the kernel and read by us per
  batch; every CQE present is then reaped and its callback called, as it also is
  right after the loop turn's io_uring_enter (entering the kernel has it post the
  completions it deferred, so they need no further wait for the fd). Where the kernel
  has it (5.19+) the ring is set up with IORING_SETUP_COOP_TASKRUN: a completion does
  not interrupt the running thread, its work is done when the thread next enters the
  kernel (which an event loop does each turn). DEFER_TASKRUN is not used: its
  pending work does not make the ring's fd readable, only an eventfd;
* at most `entries` operations are in flight; more wait their turn (in order: those
  submitted by callback in a backlog, coroutines on a future), so neither the
  submission nor the completion queue can overflow;
* a buffer handed to the kernel is kept alive (its "pin") until its CQE arrives, even
  if the awaiting task was cancelled, and `close` waits for every CQE.

The ring's head and tail words are read and written with plain loads and stores,
which is sound on x86-64 (stores are not reordered with stores, loads not with loads)
but not on weaker memory models; other architectures are refused with a clear error.
"""

from __future__ import annotations

import asyncio
import ctypes
import errno
import mmap
import os
import platform
import struct
from collections import deque
from collections.abc import Callable
from typing import Any, Final

from mayastor.errors import FailedPrecondition, caused_by

# system call numbers (x86-64) and constants of <linux/io_uring.h>
_SYS_IO_URING_SETUP: Final = 425
_SYS_IO_URING_ENTER: Final = 426
_SYS_IO_URING_REGISTER: Final = 427

IORING_OP_FSYNC: Final = 3
IORING_OP_FALLOCATE: Final = 17
IORING_OP_READ: Final = 22
IORING_OP_WRITE: Final = 23
IORING_FSYNC_DATASYNC: Final = 1
_REQUIRED_OPS: Final = {
    IORING_OP_READ: "READ",
    IORING_OP_WRITE: "WRITE",
    IORING_OP_FSYNC: "FSYNC",
    IORING_OP_FALLOCATE: "FALLOCATE",
}

_IORING_OFF_SQ_RING: Final = 0
_IORING_OFF_CQ_RING: Final = 0x8000000
_IORING_OFF_SQES: Final = 0x10000000
_IORING_FEAT_SINGLE_MMAP: Final = 1 << 0
_IORING_ENTER_GETEVENTS: Final = 1 << 0
_IORING_SETUP_COOP_TASKRUN: Final = 1 << 8
_SETUP_FLAGS: Final = (_IORING_SETUP_COOP_TASKRUN, 0)
"""Setup flags tried in turn: an older kernel refuses the newer ones with EINVAL."""
_IORING_SQ_CQ_OVERFLOW: Final = 1 << 1
_IORING_REGISTER_PROBE: Final = 8
_IO_URING_OP_SUPPORTED: Final = 1
_PROBE_OPS: Final = 256

# struct io_uring_params: 10 u32, then io_sqring_offsets and io_cqring_offsets (8 u32 + u64)
_PARAMS = struct.Struct("<10I8IQ8IQ")
# struct io_uring_sqe (64 bytes): opcode, flags, ioprio, fd, off, addr, len, op flags,
# user_data, then buf_index, personality, splice_fd_in, addr3, pad: always zero here (the
# mapping starts zeroed), so only the first 40 bytes are ever written
_SQE_SIZE: Final = 64
_SQE_HEAD = struct.Struct("<BBHiQQIIQ")
# struct io_uring_cqe (16 bytes): user_data, res, flags
_CQE = struct.Struct("<QiI")
_CQE_SIZE: Final = 16
# struct io_uring_probe header; each io_uring_probe_op is u8 op, u8 resv, u16 flags, u32 resv2
_PROBE_HEADER = struct.Struct("<BBH3I")
_PROBE_OP = struct.Struct("<BBHI")

_SYSCTL_DISABLED: Final = "/proc/sys/kernel/io_uring_disabled"
_U32_MASK: Final = 0xFFFFFFFF
_EARLY_BATCH: Final = 4
"""Fewest prepared SQEs worth an io_uring_enter before the loop iteration ends."""

Completion = Callable[[Any, int], None]
"""``callback(ctx, result)``: the CQE's result, a byte count or ``-errno``."""

_libc = ctypes.CDLL(None, use_errno=True)
_syscall = _libc.syscall
_syscall.restype = ctypes.c_long


_syscall6 = ctypes.CFUNCTYPE(ctypes.c_long, *[ctypes.c_long] * 7, use_errno=True)(
    ("syscall", _libc)
)
"""syscall(2) with the number and six arguments declared: no conversion objects per call."""


def _setup_ring(entries: int) -> tuple[int, tuple[int, ...]]:
    """io_uring_setup with the best flags this kernel takes: (fd, io_uring_params).

    The parameter buffer is read after the call: compiled code would free a buffer
    whose last use is taking its address, before the kernel writes into it.
    """
    for flags in _SETUP_FLAGS:
        params = ctypes.create_string_buffer(_PARAMS.size)
        struct.pack_into("<I", params, 8, flags)
        try:
            fd = _call(_SYS_IO_URING_SETUP, entries, ctypes.addressof(params))
        except OSError as exc:
            if exc.errno == errno.EINVAL and flags:
                continue
            raise
        return fd, _PARAMS.unpack(params.raw)
    raise AssertionError("unreachable: the last flags (none) return or raise")


def _call(number: int, *args: int) -> int:
    result = _syscall(ctypes.c_long(number), *(ctypes.c_long(a) for a in args))
    if result < 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))
    return int(result)


def _enter(fd: int, to_submit: int, min_complete: int, flags: int) -> int:
    """io_uring_enter(2) without a signal mask: the number of SQEs consumed."""
    result: int = _syscall6(_SYS_IO_URING_ENTER, fd, to_submit, min_complete, flags, 0, 0)
    if result < 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))
    return result


def _disabled_sysctl() -> int | None:
    try:
        with open(_SYSCTL_DISABLED) as fh:
            return int(fh.read().strip())
    except (OSError, ValueError):
        return None


class UringUnavailable(FailedPrecondition):
    """io_uring cannot be used on this machine (disabled, not permitted, no kernel
    support, an operation missing, another CPU architecture); the message says why."""


def _unavailable(exc: OSError) -> UringUnavailable:
    sysctl = _disabled_sysctl()
    note = f"; kernel.io_uring_disabled = {sysctl}" if sysctl else ""
    if exc.errno == errno.ENOSYS:
        what = "the kernel has no io_uring (io_uring_setup: ENOSYS)"
    elif exc.errno == errno.EPERM:
        what = "io_uring is not permitted here (io_uring_setup: EPERM)"
    else:
        what = f"io_uring_setup failed: {exc.strerror}"
    return UringUnavailable(f"io_uring is not available: {what}{note}")


def unavailable_reason() -> str | None:
    """Why this machine cannot run io_uring, or None when it can.

    Says so only for reasons that are the machine's, not bugs of ours: the sysctl
    `kernel.io_uring_disabled`, io_uring_setup refused with ENOSYS or EPERM, or a CPU
    architecture the ring code does not support.
    """
    if platform.machine() not in ("x86_64", "AMD64"):
        return f"the uring driver supports x86-64 only, this is {platform.machine()}"
    sysctl = _disabled_sysctl()
    if sysctl == 2:
        return "io_uring is disabled: kernel.io_uring_disabled = 2"
    try:
        fd, _params = _setup_ring(1)
    except OSError as exc:
        if exc.errno in (errno.ENOSYS, errno.EPERM):
            return str(_unavailable(exc))
        return None
    os.close(fd)
    return None


class IoUring:
    """One io_uring instance serving one event loop; see the module docstring.

    Args:
        entries: submission queue size, i.e. the most operations in flight.

    Raises:
        UringUnavailable: io_uring cannot be used here (disabled, not permitted, no
            kernel support, an operation we need is missing, or not x86-64); the message
            says which.
    """

    def __init__(self, entries: int = 128) -> None:
        if platform.machine() not in ("x86_64", "AMD64"):
            raise UringUnavailable(
                f"io_uring is not available: the uring driver supports x86-64 only, "
                f"this is {platform.machine()}"
            )
        self._loop = asyncio.get_running_loop()
        try:
            self._fd, params = _setup_ring(entries)
        except OSError as exc:
            raise caused_by(_unavailable(exc), exc)
        self._maps: list[mmap.mmap] = []
        try:
            self._setup(params)
        except BaseException:
            self._teardown()
            raise
        self._ops: dict[int, tuple[Completion, Any, Any]] = {}
        self._in_flight = 0
        self._reaped = 0
        self._backlog: deque[tuple[int, int, int, int, int, int, Any, Completion, Any]] = deque()
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._submit_scheduled = False
        self._idle: asyncio.Event | None = None
        self._closed = False
        self._loop.add_reader(self._fd, self._on_completions)

    # ------------------------------------------------------------------ setup

    def _setup(self, p: tuple[int, ...]) -> None:
        sq_entries, cq_entries, _flags, _cpu, _idle, features = p[:6]
        _sq_head, sq_tail, sq_mask, _sq_n, sq_flags, _dropped, sq_array = p[10:17]
        cq_head, cq_tail, cq_mask, _cq_n, _overflow, cqes = p[19:25]
        sq_size = sq_array + sq_entries * 4
        cq_size = cqes + cq_entries * _CQE_SIZE
        prot = mmap.PROT_READ | mmap.PROT_WRITE
        share = mmap.MAP_SHARED | mmap.MAP_POPULATE
        if features & _IORING_FEAT_SINGLE_MMAP:
            sq_map = cq_map = mmap.mmap(self._fd, max(sq_size, cq_size), share, prot)
            self._maps.append(sq_map)
        else:
            sq_map = mmap.mmap(self._fd, sq_size, share, prot, offset=_IORING_OFF_SQ_RING)
            self._maps.append(sq_map)
            cq_map = mmap.mmap(self._fd, cq_size, share, prot, offset=_IORING_OFF_CQ_RING)
            self._maps.append(cq_map)
        sqes = mmap.mmap(self._fd, sq_entries * _SQE_SIZE, share, prot, offset=_IORING_OFF_SQES)
        self._maps.append(sqes)
        self._sqes = sqes
        self._cq_map = cq_map
        self._sq_words = memoryview(sq_map).cast("I")
        self._cq_words = memoryview(cq_map).cast("I")
        for i in range(sq_entries):  # an identity map: SQE slot i is array entry i
            self._sq_words[sq_array // 4 + i] = i
        self._entries = sq_entries
        self._sq_mask = self._sq_words[sq_mask // 4]
        self._sq_tail_word = sq_tail // 4
        self._sq_flags_word = sq_flags // 4
        self._sq_tail = self._sq_submitted = 0  # a new ring starts with head = tail = 0
        self._cq_mask = self._cq_words[cq_mask // 4]
        self._cq_head_word = cq_head // 4
        self._cq_tail_word = cq_tail // 4
        self._cqes = cqes
        self._check_ops()

    def _check_ops(self) -> None:
        size = _PROBE_HEADER.size + _PROBE_OPS * _PROBE_OP.size
        probe = ctypes.create_string_buffer(size)
        try:
            _call(
                _SYS_IO_URING_REGISTER,
                self._fd,
                _IORING_REGISTER_PROBE,
                ctypes.addressof(probe),
                _PROBE_OPS,
            )
        except OSError as exc:
            unavailable = UringUnavailable(
                f"io_uring is not available: the kernel cannot list its operations "
                f"({exc.strerror}); it is older than 5.6"
            )
            raise caused_by(unavailable, exc)
        raw = probe.raw
        ops_len = _PROBE_HEADER.unpack_from(raw)[1]
        missing = []
        for op, label in _REQUIRED_OPS.items():
            flags = 0
            if op < ops_len:
                flags = _PROBE_OP.unpack_from(raw, _PROBE_HEADER.size + op * _PROBE_OP.size)[2]
            if not flags & _IO_URING_OP_SUPPORTED:
                missing.append(f"IORING_OP_{label}")
        if missing:
            raise UringUnavailable(
                f"io_uring is not available: the kernel lacks {', '.join(missing)}"
            )

    # ------------------------------------------------------------------ operations

    @property
    def entries(self) -> int:
        """The most operations in flight at once."""
        return self._entries

    def submit_cb(
        self,
        opcode: int,
        fd: int,
        offset: int,
        address: int,
        length: int,
        op_flags: int,
        pin: Any,
        callback: Completion,
        ctx: Any,
    ) -> None:
        """Start one operation; ``callback(ctx, result)`` is called when it ends.

        `result` is the CQE's: non-negative on success, ``-errno`` on failure
        (``-ESHUTDOWN`` once the ring is closed, or the error of a broken
        io_uring_enter). The callback is never called before this returns.

        Args:
            opcode: IORING_OP_*.
            fd, offset, address, length, op_flags: the SQE fields of that opcode.
            pin: kept alive until the kernel has completed the operation.
            callback, ctx: the completion.
        """
        if self._in_flight < self._entries and not self._closed:
            self._in_flight += 1
            self._prepare(opcode, fd, offset, address, length, op_flags, pin, callback, ctx)
        elif self._closed:
            self._loop.call_soon(callback, ctx, -errno.ESHUTDOWN)
        else:
            self._backlog.append(
                (opcode, fd, offset, address, length, op_flags, pin, callback, ctx)
            )

    async def submit(
        self, opcode: int, fd: int, offset: int, address: int, length: int, op_flags: int, pin: Any
    ) -> int:
        """Run one operation; return its non-negative result.

        Args:
            opcode: IORING_OP_*.
            fd, offset, address, length, op_flags: the SQE fields of that opcode.
            pin: kept alive until the kernel has completed the operation.

        Raises:
            OSError: the operation failed (the CQE's negative result as errno), or the
                ring is closed (ESHUTDOWN) or broke (the error of io_uring_enter).
        """
        if self._closed:
            raise OSError(errno.ESHUTDOWN, "io_uring instance is closed")
        if self._in_flight < self._entries and not self._backlog:
            self._in_flight += 1
        else:
            waiter = self._loop.create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            except BaseException:
                if waiter.done() and not waiter.cancelled():
                    self._release_slot()
                raise
            if self._closed:
                self._release_slot()
                raise OSError(errno.ESHUTDOWN, "io_uring instance is closed")
        future: asyncio.Future[int] = self._loop.create_future()
        self._prepare(opcode, fd, offset, address, length, op_flags, pin, _resolve, future)
        return await future

    def _prepare(
        self,
        opcode: int,
        fd: int,
        offset: int,
        address: int,
        length: int,
        op_flags: int,
        pin: Any,
        callback: Completion,
        ctx: Any,
    ) -> None:
        """Write the SQE of an operation that holds a slot; schedule its submission."""
        self._sq_tail = tail = self._sq_tail + 1
        self._ops[tail] = (callback, ctx, pin)  # user_data = the SQE's position, from 1
        _SQE_HEAD.pack_into(
            self._sqes,
            ((tail - 1) & self._sq_mask) * _SQE_SIZE,
            opcode, 0, 0, fd, offset, address, length, op_flags, tail,
        )  # fmt: skip
        pending = tail - self._sq_submitted
        if pending >= _EARLY_BATCH and pending >= self._sq_submitted - self._reaped:
            self._enter()  # the kernel is running dry: send what is ready now
        elif not self._submit_scheduled:
            self._submit_scheduled = True
            self._loop.call_soon(self._enter_and_reap)

    async def close(self) -> None:
        """Refuse new operations, wait for those in flight, then release the ring.

        Operations still in the backlog (never given to the kernel) end with
        ``-ESHUTDOWN``.
        """
        if self._fd < 0:
            return
        self._closed = True
        while self._backlog:
            entry = self._backlog.popleft()
            entry[7](entry[8], -errno.ESHUTDOWN)
        if self._in_flight:
            self._idle = asyncio.Event()
            await self._idle.wait()
        self._loop.remove_reader(self._fd)
        self._teardown()

    # ------------------------------------------------------------------ internals

    def _release_slot(self) -> None:
        if self._backlog and not self._closed:
            self._prepare(*self._backlog.popleft())  # the slot passes to the next in line
            return
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)  # the slot passes to the waiter
                return
        self._in_flight -= 1
        if not self._in_flight and self._idle is not None:
            self._idle.set()

    def _enter(self) -> None:
        self._submit_scheduled = False
        pending = self._sq_tail - self._sq_submitted
        if not pending or self._fd < 0:
            return
        self._sq_words[self._sq_tail_word] = self._sq_tail & _U32_MASK
        try:
            consumed = _enter(self._fd, pending, 0, 0)
        except OSError as exc:
            if exc.errno not in (errno.EINTR, errno.EAGAIN, errno.EBUSY):
                self._fail_unsubmitted(exc)
                return
            consumed = 0
        self._sq_submitted += consumed
        if consumed < pending and not self._submit_scheduled:
            self._submit_scheduled = True
            self._loop.call_soon(self._enter)

    def _enter_and_reap(self) -> None:
        """The loop turn's submission; then reap what completed meanwhile. Entering the
        kernel has it post the completions it deferred (COOP_TASKRUN), so they are
        handled now rather than after one more wait for the ring's fd."""
        self._enter()
        if (
            self._fd >= 0
            and self._cq_words[self._cq_head_word] != self._cq_words[self._cq_tail_word]
        ):
            self._on_completions()

    def _on_completions(self) -> None:
        """The ring's fd is readable: reap every CQE present and call its callback."""
        words = self._cq_words
        head = words[self._cq_head_word]
        tail = words[self._cq_tail_word]
        if head == tail:
            return
        done = []
        mask, base, cq_map, unpack = self._cq_mask, self._cqes, self._cq_map, _CQE.unpack_from
        while head != tail:
            done.append(unpack(cq_map, base + (head & mask) * _CQE_SIZE))
            head = (head + 1) & _U32_MASK
        words[self._cq_head_word] = head
        if self._sq_words[self._sq_flags_word] & _IORING_SQ_CQ_OVERFLOW:
            _enter(self._fd, 0, 0, _IORING_ENTER_GETEVENTS)
        count = len(done)
        self._reaped += count
        ops = self._ops
        if self._in_flight > count and not self._backlog and not self._waiters:
            # Nobody waits for a slot and some stay in flight: free them all at once.
            self._in_flight -= count
            for user_data, res, _flags in done:
                callback, ctx, _pin = ops.pop(user_data)
                callback(ctx, res)
            return
        for user_data, res, _flags in done:
            callback, ctx, _pin = ops.pop(user_data)
            if self._backlog or self._waiters or self._in_flight == 1:
                self._release_slot()
            else:
                self._in_flight -= 1  # nobody waits for the slot and some stay in flight
            callback(ctx, res)

    def _fail_unsubmitted(self, exc: OSError) -> None:
        """io_uring_enter itself failed: the ring is unusable.

        Operations the kernel never took are failed at once; those it took keep their
        buffers until their completions arrive.
        """
        self._closed = True
        failed = -(exc.errno or errno.EIO)
        for user_data in [u for u in self._ops if u > self._sq_submitted]:
            callback, ctx, _pin = self._ops.pop(user_data)
            self._release_slot()
            self._loop.call_soon(callback, ctx, failed)
        while self._backlog:
            entry = self._backlog.popleft()
            self._loop.call_soon(entry[7], entry[8], failed)

    def _teardown(self) -> None:
        for attr in ("_sq_words", "_cq_words"):
            view = getattr(self, attr, None)
            if view is not None:
                view.release()
        for mapped in self._maps:
            mapped.close()
        self._maps.clear()
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def _resolve(future: asyncio.Future[int], res: int) -> None:
    """The completion of an operation a coroutine waits for."""
    if future.cancelled():
        return
    if res < 0:
        future.set_exception(OSError(-res, os.strerror(-res)))
    else:
        future.set_result(res)
