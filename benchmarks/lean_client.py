"""A lean NVMe/TCP load generator: blocking sockets, no event loop, one process per queue.

The target's limit can only be seen with a client that costs less per I/O than the
target does. This one sets the controller up with our sans-I/O host queue
(`mayastor.nvmf.host.HostQueue`: ICReq, Fabrics Connect, Property Set CC.EN, Set
Features), then drives each I/O queue from a process of its own with a loop that does
nothing but parse completions and pack the next command into one `send` per
received batch: about 1-2 µs of CPU per I/O, a fraction of what the targets under
test spend. Reads ask for SQ flow control off, so a target may end them with a
C2HData SUCCESS flag; writes up to the target's in-capsule size go in the capsule,
larger ones answer R2Ts with H2CData.

Run as a script it prints one JSON object (stdout); the benchmark runner imports
`run_load` instead:

    .venv/bin/python benchmarks/lean_client.py 127.0.0.1 PORT NQN --workload randread
        [--bs 4096] [--qd 32] [--procs 1] [--seconds 5] [--cpu 1] [--size-mb N]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import random
import resource
import socket
import struct
import sys
import time
import uuid
from array import array
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mayastor.nvmf.host import HostQueue
from mayastor.nvmf.spec import (
    NO_DATA,
    Cns,
    Command,
    ControllerConfiguration,
    ControllerStatus,
    FeatureId,
    Identify,
    IdentifyController,
    IdentifyNamespace,
    NumberOfQueues,
    PropertyGet,
    PropertyOffset,
    PropertySet,
    SetFeatures,
)

HOSTNQN = "nqn.2019-05.io.openebs:node-name:lean-client"
WORKLOADS = ("randread", "randwrite", "seqread", "seqwrite")

_CMD = struct.Struct("<BBBBIBBHI16xQI3xBIII12x")
"""A CapsuleCmd without digests: common header, then the SQE fields we set."""
_COMMON = struct.Struct("<BBBBI")
_U16 = struct.Struct("<H")
_R2T = struct.Struct("<HHII")
_H2C = struct.Struct("<BBBBIHHII4x")
_CAPSULE_RESP, _C2H_DATA, _R2T_TYPE = 0x05, 0x07, 0x09
_SUCCESS = 0x08
_IOV_MAX = 1024


@dataclass(frozen=True)
class Target:
    host: str
    port: int
    nqn: str
    hostnqn: str = HOSTNQN


# ------------------------------------------------------------------ set-up (slow path)


class _SyncQueue:
    """A `HostQueue` driven over a blocking socket, one command at a time (set-up only)."""

    def __init__(self, target: Target, qid: int, queue_size: int) -> None:
        self.sock = socket.create_connection((target.host, target.port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.core = HostQueue(qid, queue_size=queue_size, in_capsule_size=0)
        self._pump(lambda token: self.core.start(token))

    def _pump(self, submit: object) -> tuple[int, int, int, object]:
        token = object()
        submit(token)  # type: ignore[operator]
        for part in self.core.data_to_send():
            self.sock.sendall(part)
        while True:
            data = self.sock.recv(1 << 20)
            if not data:
                raise ConnectionError("the target closed the connection during set-up")
            for done in self.core.receive_data(data):
                if done[0] is token:
                    return done[1], done[2], done[3], done[4]
            if self.core.error is not None:
                raise ConnectionError(str(self.core.error))

    def connect(self, target: Target, cntlid: int, *, kato_ms: int = 0) -> int:
        status, dw0, _, _ = self._pump(
            lambda token: self.core.connect(
                hostid=uuid.uuid5(uuid.NAMESPACE_URL, target.hostnqn),
                cntlid=cntlid,
                subnqn=target.nqn,
                hostnqn=target.hostnqn,
                kato_ms=kato_ms,
                disable_sq_flow_control=True,
                token=token,
            )
        )
        if status:
            raise ConnectionError(f"Fabrics Connect refused: status {status:#x}")
        return dw0 & 0xFFFF

    def command(self, cmd: Command, read_length: int = 0) -> tuple[int, object]:
        status, dw0, _, data = self._pump(
            lambda token: self.core.submit_command(cmd, read_length=read_length, token=token)
        )
        if status:
            raise ConnectionError(f"{cmd} failed: status {status:#x}")
        return dw0, data


@dataclass(frozen=True)
class Namespace:
    cntlid: int
    block_size: int
    num_blocks: int
    in_capsule: int
    queues: int


def set_up(target: Target, queues: int) -> tuple[_SyncQueue, Namespace]:
    """Connect the admin queue, enable the controller, ask for `queues` I/O queues."""
    admin = _SyncQueue(target, 0, 32)
    cntlid = admin.connect(target, 0xFFFF, kato_ms=0)
    cc = ControllerConfiguration(en=True, iosqes=6, iocqes=4)
    admin.command(PropertySet(PropertyOffset.CC, cc.encode()).to_command(0))
    while True:
        value, _ = admin.command(PropertyGet(PropertyOffset.CSTS).to_command(0))
        if ControllerStatus.decode(value).rdy:
            break
        time.sleep(0.01)
    granted, _ = admin.command(
        SetFeatures(
            FeatureId.NUMBER_OF_QUEUES, NumberOfQueues(queues - 1, queues - 1).encode()
        ).to_command(0)
    )
    _, raw = admin.command(Identify(Cns.CONTROLLER).to_command(0, 0, NO_DATA), read_length=4096)
    ident = IdentifyController.decode(raw)  # type: ignore[arg-type]
    _, raw = admin.command(Identify(Cns.NAMESPACE).to_command(0, 1, NO_DATA), read_length=4096)
    ns = IdentifyNamespace.decode(raw)  # type: ignore[arg-type]
    return admin, Namespace(
        cntlid=cntlid,
        block_size=ns.block_size,
        num_blocks=ns.nsze,
        in_capsule=max(0, ident.ioccsz * 16 - 64),
        queues=min(queues, NumberOfQueues.decode(granted).submission_queues),
    )


# ------------------------------------------------------------------ the I/O loop (hot path)


def _io_queue(
    target: Target,
    ns: Namespace,
    qid: int,
    workload: str,
    bs: int,
    qd: int,
    phase: Any,
    region_blocks: int,
    seed: int,
) -> dict[str, object]:
    """Keep `qd` commands in flight on I/O queue `qid` until `phase` says stop.

    `phase.value` is set by the parent: 0 warming up, 1 measuring, 2 stop.
    """
    setup = _SyncQueue(target, qid, qd + 1)
    setup.connect(target, ns.cntlid)
    sock = setup.sock
    write = workload.endswith("write")
    rand = workload.startswith("rand")
    nblocks = bs // ns.block_size
    slots = max(1, region_blocks // nblocks)
    rng = random.Random(seed)
    payload = memoryview(os.urandom(bs))
    in_capsule = write and bs <= ns.in_capsule
    opcode = 0x01 if write else 0x02
    sgl = 0x01 if in_capsule else 0x5A
    pdo = 72 if in_capsule else 0
    plen = 72 + bs if in_capsule else 72
    cmd = _CMD.pack
    cursor = [seed * 7919 % slots]

    def command(cid: int) -> bytes:
        if rand:
            lba = rng.randrange(slots) * nblocks
        else:
            cursor[0] = (cursor[0] + 1) % slots
            lba = cursor[0] * nblocks
        return cmd(4, 0, 72, pdo, plen, opcode, 0x40, cid, 1, 0, bs, sgl,
                   lba & 0xFFFFFFFF, lba >> 32, nblocks - 1)  # fmt: skip

    started = array("q", [0]) * qd
    latencies = array("q")
    clock = time.perf_counter_ns
    out: list[bytes | memoryview] = []
    for cid in range(qd):
        out.append(command(cid))
        if in_capsule:
            out.append(payload)
        started[cid] = clock()
    _send_all(sock, out)
    out.clear()
    buf = bytearray(max(8 << 20, 4 * qd * (bs + 64)))
    view = memoryview(buf)
    have = 0
    unpack = _COMMON.unpack_from
    cid_at = _U16.unpack_from
    measuring = False
    ops = 0
    cpu0 = t0 = elapsed = cpu = 0.0
    stopping = False
    in_flight = qd
    recv_into = sock.recv_into
    while in_flight:
        n = recv_into(view[have:])
        if not n:
            raise ConnectionError("the target closed the I/O queue")
        have += n
        pos = 0
        now = clock()
        while have - pos >= 8:
            ptype, flags, _hlen, _pdo, pdu_len = unpack(buf, pos)
            if have - pos < pdu_len:
                break
            if ptype == _CAPSULE_RESP:
                cid = cid_at(buf, pos + 20)[0]
                if buf[pos + 22] >> 1 or buf[pos + 23]:
                    raise ConnectionError(f"command {cid} failed: {bytes(buf[pos : pos + 24])!r}")
            elif ptype == _C2H_DATA and flags & _SUCCESS:
                cid = cid_at(buf, pos + 8)[0]
            elif ptype == _R2T_TYPE:
                rcid, ttag, offset, length = _R2T.unpack_from(buf, pos + 8)
                out.append(_H2C.pack(0x06, 0x04, 24, 24, 24 + length, rcid, ttag, offset, length))
                out.append(payload[offset : offset + length])
                pos += pdu_len
                continue
            else:
                pos += pdu_len
                continue
            pos += pdu_len
            if measuring:
                latencies.append(now - started[cid])
            if stopping:
                in_flight -= 1
                continue
            out.append(command(cid))
            if in_capsule:
                out.append(payload)
            started[cid] = now
        if pos:
            # The partial PDU moves to the front: receiving into the same (cached)
            # memory each time costs less than walking through the buffer.
            rest = have - pos
            if rest:
                buf[:rest] = buf[pos:have]
            have = rest
        if out:
            _send_all(sock, out)
            out.clear()
        state = phase.value
        if state == 1 and not measuring and not stopping:
            measuring = True
            cpu0, t0 = _cpu(), time.perf_counter()
            latencies = array("q")
        elif state == 2 and not stopping:
            stopping = True
            if measuring:
                measuring = False
                elapsed = time.perf_counter() - t0
                cpu = _cpu() - cpu0
                ops = len(latencies)
    sock.close()
    setup.sock = sock
    lat = sorted(latencies)
    return {
        "qid": qid,
        "ops": ops,
        "seconds": elapsed,
        "client_cpu_seconds": cpu,
        "lat_p50_us": _pct(lat, 0.5),
        "lat_p99_us": _pct(lat, 0.99),
        "lat_mean_us": (sum(lat) / len(lat) / 1000) if lat else 0.0,
    }


def _send_all(sock: socket.socket, parts: list[bytes | memoryview]) -> None:
    """Send `parts` with as few `sendmsg` calls as the kernel allows, copying nothing."""
    views = [memoryview(part) for part in parts]
    while views:
        sent = sock.sendmsg(views[:_IOV_MAX])
        while sent:
            size = views[0].nbytes
            if sent >= size:
                sent -= size
                views.pop(0)
            else:
                views[0] = views[0][sent:]
                sent = 0


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _pct(lat: list[int], fraction: float) -> float:
    return lat[min(len(lat) - 1, int(fraction * len(lat)))] / 1000 if lat else 0.0


def _child(args: tuple[Any, ...], cpu: int | None, pipe: Any) -> None:
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})
    try:
        pipe.send(_io_queue(*args))
    except BaseException as exc:
        pipe.send({"error": repr(exc)})
        raise


def run_load(
    target: Target,
    *,
    workload: str,
    bs: int,
    qd: int,
    procs: int = 1,
    seconds: float = 5.0,
    warmup: float = 1.0,
    cpu: int | None = None,
    size_mb: int = 0,
    probe: Callable[[], float] | None = None,
) -> dict[str, object]:
    """Run `procs` queue processes of depth `qd` each; their figures summed up.

    Args:
        probe: read at the start and at the end of the measured window (e.g. the
            target's CPU seconds); the difference is returned as ``probe``.

    Returns:
        ops, iops, mb_per_s, latency percentiles (of the first queue), the clients'
        CPU µs per I/O, and ``probe``.
    """
    admin, ns = set_up(target, procs)
    ctx = multiprocessing.get_context("fork")
    phase = ctx.Value("i", 0, lock=False)
    children = []
    try:
        region = (
            ns.num_blocks if not size_mb else min(ns.num_blocks, (size_mb << 20) // ns.block_size)
        )
        for index in range(ns.queues):
            parent_end, child_end = ctx.Pipe(duplex=False)
            args = (target, ns, index + 1, workload, bs, qd, phase, region, index + 1)
            proc = ctx.Process(target=_child, args=(args, cpu, child_end))
            proc.start()
            children.append((proc, parent_end))
        time.sleep(warmup)
        probe0 = probe() if probe is not None else 0.0
        phase.value = 1
        time.sleep(seconds)
        phase.value = 2
        probed = (probe() - probe0) if probe is not None else 0.0
        results = [end.recv() for _, end in children]
    finally:
        phase.value = 2
        for proc, _ in children:
            proc.join(timeout=30)
            if proc.is_alive():
                proc.kill()
        admin.sock.close()
    for result in results:
        if "error" in result:
            raise RuntimeError(f"an I/O queue failed: {result['error']}")
    ops = sum(int(r["ops"]) for r in results)
    wall = max(float(r["seconds"]) for r in results)
    cpu_s = sum(float(r["client_cpu_seconds"]) for r in results)
    return {
        "workload": workload,
        "block_size": bs,
        "queue_depth": qd,
        "queues": len(results),
        "ops": ops,
        "seconds": round(wall, 3),
        "iops": round(ops / wall, 1),
        "mb_per_s": round(ops * bs / wall / 1e6, 1),
        "lat_p50_us": round(float(results[0]["lat_p50_us"]), 1),
        "lat_p99_us": round(float(results[0]["lat_p99_us"]), 1),
        "lat_mean_us": round(float(results[0]["lat_mean_us"]), 1),
        "client_cpu_us_per_io": round(cpu_s / ops * 1e6, 2) if ops else None,
        "probe": probed,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("host")
    parser.add_argument("port", type=int)
    parser.add_argument("nqn")
    parser.add_argument("--hostnqn", default=HOSTNQN)
    parser.add_argument("--workload", choices=WORKLOADS, default="randread")
    parser.add_argument("--bs", type=int, default=4096)
    parser.add_argument("--qd", type=int, default=32)
    parser.add_argument("--procs", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--cpu", type=int, default=None, help="pin the queue processes here")
    parser.add_argument("--size-mb", type=int, default=0)
    args = parser.parse_args(argv)
    result = run_load(
        Target(args.host, args.port, args.nqn, args.hostnqn),
        workload=args.workload,
        bs=args.bs,
        qd=args.qd,
        procs=args.procs,
        seconds=args.seconds,
        warmup=args.warmup,
        cpu=args.cpu,
        size_mb=args.size_mb,
    )
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
