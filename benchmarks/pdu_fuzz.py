"""A million mutated NVMe/TCP PDUs against a live io-engine, a bystander host served
throughout.

A real `mayastor` process serves one replica (`served_replica`). Fuzzing workers
(seeded) each keep one well-behaved admin controller of their own, then open
connection after connection: a valid ICReq and Connect (a new admin queue, or an I/O
queue of their controller), then a stream of mutated PDUs built from valid ones
(capsules of every admin, Fabrics and NVM command we serve and some we do not, with
in-capsule or R2T data; H2CData; a few H2CTermReqs): bytes of the SQE or the data
flipped or set to edge values, fields of H2CData headers changed; a third of the
connections end with a PDU whose framing is broken (random common header, lengths
past any limit, a PDU cut short). Every PDU the target sends back is decoded: it must
be well-formed. Meanwhile our own initiator writes 4 KiB blocks and reads them back,
and the engine's RSS is sampled twice a second. The bystander uses a second replica of
the same target (the fuzzers' writes land anywhere in theirs).

Reported (JSON): PDUs sent, connections, terminations and responses seen, malformed
responses, bystander I/Os, failures and its longest gap between two good I/Os, the
engine's idle and peak RSS against the stated bound, whether it is still alive, and
the error lines of its log. The run fails (exit 1) on a crash, a malformed response,
a bystander failure, or RSS over the bound.

Usage: ``.venv/bin/python benchmarks/pdu_fuzz.py [--pdus 1000000] [--workers 6]
[--seed 1] [--output FILE.json]``; ``--pdus 5000`` makes a quick run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import struct
import sys
import time
import uuid as uuid_mod
from dataclasses import dataclass, field
from pathlib import Path

from mayastor.errors import MayastorError
from mayastor.nvmf.host import Controller, ControllerOptions
from mayastor.nvmf.pdu import C2HTermReq, ICResp, PduError, PduReader, PduWriter, Role
from mayastor.nvmf.spec import (
    Command,
    Connect,
    ConnectData,
    ControllerConfiguration,
    FeatureId,
    GetLogPage,
    Identify,
    PropertyGet,
    PropertySet,
    Read,
    SglDescriptor,
    Write,
    WriteZeroes,
)
from served_replica import HOST_PREFIX, Replica, cpu_seconds, rss_bytes, served_replica

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "pdu_fuzz.json"
RSS_BOUND = 512 << 20
"""The engine's RSS may not pass this during the run (idle it is about 55 MiB)."""
PER_CONNECTION = (50, 400)
"""Mutated PDUs on one connection, at least and at most."""
BATCH = 25
IDLE = 0.05
BYSTANDER = HOST_PREFIX + "uuid:b0b0b0b0-0000-4000-8000-000000000001"
EDGES = (0, 1, 0x7F, 0x80, 0xFF, 0xFFFF, 0x7FFF_FFFF, 0x8000_0000, 0xFFFF_FFFF)
CC_ENABLE = ControllerConfiguration(en=True, iosqes=6, iocqes=4).encode()


@dataclass
class Tally:
    pdus: int = 0
    connections: int = 0
    terminated: int = 0
    closed_by_target: int = 0
    responses: int = 0
    malformed: list[str] = field(default_factory=list)


# ------------------------------------------------------------------ valid PDUs


def capsule(writer: PduWriter, cmd: Command, data: bytes = b"") -> bytes:
    return b"".join(bytes(p) for p in writer.encode_capsule_cmd(cmd.encode(), data))


def admin_templates(rng: random.Random, cid: int) -> tuple[Command, bytes]:
    choice = rng.randrange(12)
    t = SglDescriptor.transport
    if choice == 0:
        return Identify(rng.choice([0, 1, 2, 3, 5, 6, 0x10])).to_command(cid, 1, t(4096)), b""
    if choice == 1:
        lid = rng.choice([1, 2, 3, 4, 0x0C, 0x70, 0x80])
        return GetLogPage.for_bytes(lid, 512).to_command(cid, 0xFFFF_FFFF, t(512)), b""
    if choice == 2:
        return Command(0x0A, cid, 0, t(0), cdw10=rng.choice(list(FeatureId))), b""
    if choice == 3:
        fid = rng.choice(list(FeatureId))
        return Command(0x09, cid, 0, t(0), cdw10=fid, cdw11=rng.getrandbits(32)), b""
    if choice == 4:
        return Command(0x18, cid, 0, t(0)), b""  # Keep Alive
    if choice == 5:
        return Command(0x0C, cid, 0, t(0)), b""  # Async Event Request
    if choice == 6:
        return Command(0x08, cid, 0, t(0), cdw10=rng.getrandbits(32)), b""  # Abort
    if choice == 7:
        return PropertyGet(rng.choice([0, 8, 0x14, 0x1C, 0x20]), rng.choice([4, 8])).to_command(
            cid
        ), b""
    if choice == 8:
        value = rng.choice([CC_ENABLE, CC_ENABLE | 1 << 14, 0, rng.getrandbits(32)])
        return PropertySet(0x14, value, 4).to_command(cid), b""
    if choice == 9:
        data = ConnectData(uuid_mod.uuid4(), 0xFFFF, "nqn.x", HOST_PREFIX + "x").encode()
        return Connect(qid=0, sqsize=31).to_command(cid, SglDescriptor.in_capsule(len(data))), data
    opcode = rng.randrange(256)
    return Command(opcode, cid, rng.getrandbits(32), t(rng.choice([0, 512, 4096]))), b""


def io_templates(rng: random.Random, cid: int) -> tuple[Command, bytes]:
    choice = rng.randrange(10)
    t = SglDescriptor.transport
    lba = rng.randrange(0, 1 << 17)
    nblocks = rng.choice([1, 8, 16, 256])
    if choice <= 2:
        return Read(lba, nblocks - 1).to_command(cid, 1, t(nblocks * 512)), b""
    if choice <= 4:
        size = rng.choice([512, 4096, 8192])
        data = rng.randbytes(size)
        return Write(lba, size // 512 - 1).to_command(cid, 1, SglDescriptor.in_capsule(size)), data
    if choice == 5:
        return Write(lba, nblocks - 1).to_command(cid, 1, t(nblocks * 512)), b""
    if choice == 6:
        return Command(0x00, cid, rng.choice([1, 0xFFFF_FFFF])), b""  # Flush
    if choice == 7:
        return WriteZeroes(lba, nblocks - 1).to_command(cid, 1), b""
    if choice == 8:
        data = rng.randbytes(rng.choice([16, 64, 4096]))
        opcode = rng.choice([0x09, 0x0D, 0x0E, 0x11, 0x15])
        return Command(opcode, cid, 1, SglDescriptor.in_capsule(len(data)),
                       cdw10=rng.getrandbits(32)), data  # fmt: skip
    return Command(rng.randrange(256), cid, 1, t(rng.choice([0, 512]))), b""


def mutate(rng: random.Random, pdu: bytearray, start: int) -> None:
    """Change bytes of `pdu` at or after `start` (its header is left alone)."""
    for _ in range(rng.randint(1, 4)):
        if rng.random() < 0.5:
            where = rng.randrange(start, len(pdu))
            pdu[where] ^= 1 << rng.randrange(8)
        elif len(pdu) - start >= 4:
            where = rng.randrange(start, len(pdu) - 3)
            struct.pack_into("<I", pdu, where, rng.choice(EDGES))


def mutated_pdu(rng: random.Random, writer: PduWriter, admin: bool) -> bytes:
    roll = rng.random()
    cid = rng.randrange(0x10000)
    if roll < 0.01:
        data = rng.randbytes(rng.choice([4, 512, 4096]))
        h2c = b"".join(
            bytes(p)
            for p in writer.encode_h2c_data(cid, rng.randrange(64), rng.choice([0, 4096]), data)
        )
        pdu = bytearray(h2c)
        mutate(rng, pdu, 8) if rng.random() < 0.5 else None
        return bytes(pdu)
    if roll < 0.011:
        return b"".join(bytes(p) for p in writer.encode_term_req(rng.randrange(8), 0, b""))
    cmd, data = admin_templates(rng, cid) if admin else io_templates(rng, cid)
    pdu = bytearray(capsule(writer, cmd, data))
    if roll < 0.8:
        mutate(rng, pdu, 8)
    if rng.random() < 0.03:
        pdu[1] ^= 1 << rng.randrange(8)  # flags: digests we did not negotiate, ...
    return bytes(pdu)


def broken_framing(rng: random.Random) -> bytes:
    kind = rng.randrange(3)
    if kind == 0:
        ptype = rng.choice([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0x7F, 0xFF])
        hlen = rng.randrange(256)
        header = struct.pack(
            "<BBBBI", ptype, rng.randrange(256), hlen, rng.randrange(256), rng.choice(EDGES)
        )
        return header + rng.randbytes(rng.randrange(200))
    if kind == 1:
        return struct.pack("<BBBBI", 4, 0, 72, 72, 72 + (64 << 20)) + bytes(64)
    return struct.pack("<BBBBI", 4, 0, 72, 0, 72) + rng.randbytes(rng.randrange(1, 63))


# ------------------------------------------------------------------ connections


async def read_all(reader: asyncio.StreamReader, host: PduReader, tally: Tally) -> bool:
    """Decode what the target sends until it closes (True) or goes quiet (False)."""
    while True:
        try:
            chunk = await asyncio.wait_for(reader.read(1 << 20), IDLE * 4)
        except TimeoutError:
            return False
        except (ConnectionError, OSError):
            return True
        if not chunk:
            return True
        host.feed(chunk)
        try:
            while (pdu := host.next_pdu()) is not None:
                tally.responses += 1
                if isinstance(pdu, ICResp):
                    host.configure(header_digest=pdu.hdgst_enable, data_digest=pdu.ddgst_enable)
                elif isinstance(pdu, C2HTermReq):
                    tally.terminated += 1
        except PduError as err:
            tally.malformed.append(repr(err))
            return True


async def anchor_controller(
    replica: Replica, hostnqn: str, hostid: uuid_mod.UUID
) -> tuple[asyncio.StreamWriter, int]:
    """A valid admin queue (the fuzzing worker's own controller); its CNTLID."""
    reader, writer = await asyncio.open_connection(replica.host, replica.port)
    pw = PduWriter(Role.HOST)
    data = ConnectData(hostid, 0xFFFF, replica.nqn, hostnqn).encode()
    cmd = Connect(qid=0, sqsize=31).to_command(1, SglDescriptor.in_capsule(len(data)))
    writer.write(b"".join(bytes(p) for p in pw.encode_ic_req()) + capsule(pw, cmd, data))
    writer.write(capsule(pw, PropertySet(0x14, CC_ENABLE, 4).to_command(2)))
    host = PduReader(Role.HOST)
    cntlid = None
    while cntlid is None:
        host.feed(await reader.read(65536))
        while (pdu := host.next_pdu()) is not None:
            if hasattr(pdu, "cqe") and struct.unpack_from("<H", pdu.cqe, 12)[0] == 1:
                cntlid = struct.unpack_from("<I", pdu.cqe, 0)[0] & 0xFFFF
    asyncio.get_running_loop().create_task(_drain(reader))
    return writer, cntlid


async def _drain(reader: asyncio.StreamReader) -> None:
    while await reader.read(65536):
        pass


async def fuzz_connection(
    replica: Replica,
    rng: random.Random,
    tally: Tally,
    host: tuple[str, uuid_mod.UUID, int],
    qid: int,
) -> None:
    hostnqn, hostid, cntlid = host
    admin = qid == 0
    reader, writer = await asyncio.open_connection(replica.host, replica.port)
    pw = PduWriter(Role.HOST)
    data = ConnectData(hostid, 0xFFFF if admin else cntlid, replica.nqn, hostnqn)
    body = data.encode()
    connect = Connect(qid=qid, sqsize=31 if admin else 127).to_command(
        0, SglDescriptor.in_capsule(len(body))
    )
    opening = b"".join(bytes(p) for p in pw.encode_ic_req()) + capsule(pw, connect, body)
    if admin:
        opening += capsule(pw, PropertySet(0x14, CC_ENABLE, 4).to_command(1))
    tally.connections += 1
    reading = asyncio.ensure_future(read_all_until_closed(reader, tally))
    try:
        writer.write(opening)
        count = rng.randint(*PER_CONNECTION)
        sent = 0
        while sent < count and not reading.done():
            n = min(BATCH, count - sent)
            writer.write(b"".join(mutated_pdu(rng, pw, admin) for _ in range(n)))
            sent += n
            await writer.drain()
            await asyncio.sleep(0)
        tally.pdus += sent
        if rng.random() < 0.33 and not reading.done():
            writer.write(broken_framing(rng))
            tally.pdus += 1
        await asyncio.wait([reading], timeout=IDLE * 6)
    except (ConnectionError, OSError):
        pass
    finally:
        if reading.done():
            tally.closed_by_target += 1
        else:
            reading.cancel()
        writer.close()
        await asyncio.gather(reading, return_exceptions=True)


async def read_all_until_closed(reader: asyncio.StreamReader, tally: Tally) -> bool:
    host = PduReader(Role.HOST, max_data_length=16 << 20)
    while True:
        closed = await read_all(reader, host, tally)
        if closed:
            return True


async def worker(replica: Replica, seed: int, index: int, tally: Tally, goal: int) -> None:
    rng = random.Random(seed * 1000 + index)
    hostid = uuid_mod.UUID(f"00000000-0000-4000-8000-{index:012d}")
    hostnqn = HOST_PREFIX + f"uuid:{hostid}"
    anchor, cntlid = await anchor_controller(replica, hostnqn, hostid)
    qid = 0
    try:
        while tally.pdus < goal:
            qid = 0 if rng.random() < 0.3 else qid % 32 + 1
            await fuzz_connection(replica, rng, tally, (hostnqn, hostid, cntlid), qid)
    finally:
        anchor.close()


@dataclass
class Bystander:
    ops: int = 0
    failures: list[str] = field(default_factory=list)
    longest_gap: float = 0.0


async def bystander(replica: Replica, stop: asyncio.Event, record: Bystander) -> None:
    ctrl = Controller(
        replica.host, replica.port, replica.others[0],
        ControllerOptions(hostnqn=BYSTANDER, io_queues=1, io_timeout=10.0),
    )  # fmt: skip
    await ctrl.connect()
    rng = random.Random(7)
    last = time.monotonic()
    try:
        while not stop.is_set():
            lba = rng.randrange(0, (32 << 20) // 512 - 8)
            data = os.urandom(4096)
            try:
                await ctrl.write(1, lba, 8, data)
                back = await ctrl.read(1, lba, 8, 4096)
                if bytes(back) != data:
                    record.failures.append(f"block {lba} read back different data")
            except MayastorError as exc:
                record.failures.append(repr(exc))
            now = time.monotonic()
            record.longest_gap = max(record.longest_gap, now - last)
            last = now
            record.ops += 2
            await asyncio.sleep(0.005)
    finally:
        await ctrl.close()


async def sample_rss(pid: int, stop: asyncio.Event, peak: list[int]) -> None:
    while not stop.is_set():
        peak[0] = max(peak[0], rss_bytes(pid))
        await asyncio.sleep(0.5)


async def run(replica: Replica, args: argparse.Namespace) -> dict[str, object]:
    tally = Tally()
    stop = asyncio.Event()
    idle_rss = rss_bytes(replica.pid)
    peak = [idle_rss]
    record = Bystander()
    cpu0, t0 = cpu_seconds(replica.pid), time.monotonic()
    side = [
        asyncio.ensure_future(bystander(replica, stop, record)),
        asyncio.ensure_future(sample_rss(replica.pid, stop, peak)),
    ]
    last_report = 0
    workers = [
        asyncio.ensure_future(worker(replica, args.seed, i, tally, args.pdus))
        for i in range(args.workers)
    ]
    while not all(w.done() for w in workers):
        await asyncio.sleep(1)
        if tally.pdus - last_report >= 100_000:
            last_report = tally.pdus
            print(
                f"{tally.pdus} PDUs, {tally.connections} connections, "
                f"RSS {rss_bytes(replica.pid) >> 20} MiB, bystander {record.ops} I/Os",
                file=sys.stderr,
                flush=True,
            )
    for w in workers:
        w.result()
    seconds = time.monotonic() - t0
    cpu = cpu_seconds(replica.pid) - cpu0
    stop.set()
    await asyncio.gather(*side)
    alive = replica.engine.running
    log = replica.engine.log_tail(100_000)
    lines = log.splitlines()
    errors = [" | ".join(lines[n : n + 30]) for n, line in enumerate(lines) if " ERROR " in line]
    return {
        "pdus": tally.pdus,
        "connections": tally.connections,
        "terminations_seen": tally.terminated,
        "closed_by_target": tally.closed_by_target,
        "responses": tally.responses,
        "malformed_responses": tally.malformed[:20],
        "seconds": round(seconds, 1),
        "pdus_per_second": round(tally.pdus / seconds),
        "engine_cpu_seconds": round(cpu, 1),
        "engine_cpu_us_per_pdu": round(cpu / tally.pdus * 1e6, 1),
        "engine_alive": alive,
        "engine_error_lines": errors[:20],
        "rss_idle_mib": round(idle_rss / (1 << 20), 1),
        "rss_peak_mib": round(peak[0] / (1 << 20), 1),
        "rss_bound_mib": RSS_BOUND >> 20,
        "bystander_ios": record.ops,
        "bystander_failures": record.failures[:20],
        "bystander_longest_gap_s": round(record.longest_gap, 3),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pdus", type=int, default=1_000_000)
    parser.add_argument("--workers", type=int, default=6)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    with served_replica(count=2) as replica:
        figures = asyncio.run(run(replica, args))
    report = {
        "benchmark": "pdu_fuzz",
        "command": "benchmarks/pdu_fuzz.py " + " ".join(argv or sys.argv[1:]),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "seed": args.seed,
        "workers": args.workers,
        **figures,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    failed = (
        not figures["engine_alive"]
        or figures["malformed_responses"]
        or figures["bystander_failures"]
        or figures["rss_peak_mib"] > RSS_BOUND >> 20  # type: ignore[operator]
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
