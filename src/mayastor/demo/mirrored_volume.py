"""The demo's second part: one volume mirrored over three io-engines.

Node A (the demo's io-engine) holds a local replica and the nexus; nodes B and C, two
more io-engine processes, hold one replica each, shared over NVMe/TCP. The nexus is
published, data is written through it over NVMe/TCP with our initiator, node C is killed
with SIGKILL in the middle, writes go on, C is started again and its child brought back
online with a partial rebuild; at the end the volume reads back as written and the three
replicas, read directly, are identical.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import os
from pathlib import Path
from typing import Any

from mayastor.bdev import NvmfDevice
from mayastor.cluster.processes import EngineProcess
from mayastor.demo.terminal import DemoFailed, query, say, wait_until
from mayastor.demo.terminal import run as run_plain
from mayastor.nvmf.host import ControllerOptions

VOLUME_UUID = "d3e0a0b5-0000-4000-8000-000000000001"
VOLUME_MIB = 32
DISK_SIZE = 100 << 20
DEMO_HOST_NQN = "nqn.2019-05.io.openebs:demo-host"
READER_NQN = "nqn.2019-05.io.openebs:node-name:demo-reader"
"""An io-engine-style host NQN: shared replicas admit it by default."""
CHUNK = 1 << 20

run = functools.partial(run_plain, show_bind=True)


async def write_through(uri: str, offset: int, data: bytes) -> None:
    device = await NvmfDevice.open(uri, options=ControllerOptions(hostnqn=DEMO_HOST_NQN))
    try:
        for start in range(0, len(data), CHUNK):
            lba = (offset + start) // device.block_size
            await device.write(lba, data[start : start + CHUNK])
        await device.flush()
    finally:
        await device.close()


async def read_through(uri: str, length: int, hostnqn: str) -> bytes:
    device = await NvmfDevice.open(uri, options=ControllerOptions(hostnqn=hostnqn))
    try:
        step = CHUNK // device.block_size
        parts = [
            bytes(await device.read(lba, step))
            for lba in range(0, length // device.block_size, step)
        ]
        return b"".join(parts)
    finally:
        await device.close()


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


class MirroredVolume:
    """The three nodes of the second part and the steps run on them."""

    def __init__(self, a: EngineProcess, workdir: Path) -> None:
        self.a = a
        self.workdir = workdir
        self.b = EngineProcess("node-b", workdir)
        self.c = EngineProcess("node-c", workdir)
        self.children: list[str] = []
        self.nexus_uri = ""

    def disk(self, node: str) -> Path:
        path = self.workdir / f"{node}.img"
        with open(path, "wb") as fh:
            fh.truncate(DISK_SIZE)
        return path

    def child(self, uri: str) -> dict[str, Any]:
        (nexus,) = query(self.a, "nexus", "list")
        return next(c for c in nexus["children"] if c["uri"] == uri)

    def run_all(self) -> None:
        try:
            self.create()
            self.write_lose_a_replica_and_heal()
            self.check_replicas()
        finally:
            for engine in (self.b, self.c):
                if engine.running:
                    engine.stop()

    def create(self) -> None:
        say("part 2: a volume mirrored over three io-engines, published over NVMe/TCP")
        for engine in (self.b, self.c):
            engine.start()
            print(f"# started io-engine {engine.node_name} (gRPC {engine.endpoint})")
        run(self.a, "pool", "create", "vpool", str(self.disk("node-a")))
        run(self.a, "replica", "create", "vpool", "vol-a", f"--size={VOLUME_MIB}")
        self.children = [query(self.a, "replica", "list", "--pool", "vpool")[0]["uri"]]
        for engine, name in ((self.b, "vol-b"), (self.c, "vol-c")):
            pool = f"vpool-{engine.node_name}"
            run(engine, "pool", "create", pool, str(self.disk(engine.node_name)))
            run(engine, "replica", "create", pool, name, f"--size={VOLUME_MIB}", "--share", "nvmf")
            self.children.append(query(engine, "replica", "list", "--pool", pool)[0]["uri"])
        say("the nexus: one local child (bdev:///) and two remote ones (nvmf://)")
        run(self.a, "nexus", "create", VOLUME_UUID, str(VOLUME_MIB), *self.children)
        self.nexus_uri = run(
            self.a, "nexus", "publish", VOLUME_UUID, "--allowed-host", DEMO_HOST_NQN
        ).strip()
        run(self.a, "nexus", "children", VOLUME_UUID)

    def write_lose_a_replica_and_heal(self) -> None:
        half = VOLUME_MIB // 2 << 20
        first, second = os.urandom(half), os.urandom(half)
        say(f"write {half >> 20} MiB through the published nexus (sha256 {digest(first)})")
        asyncio.run(write_through(self.nexus_uri, 0, first))

        lost = self.children[2]
        assert self.c.proc is not None
        say(f"kill -9 {self.c.proc.pid} (node-c): its replica is gone without a word")
        self.c.kill()
        say(f"write {half >> 20} MiB more (sha256 {digest(second)}): the nexus goes on")
        asyncio.run(write_through(self.nexus_uri, half, second))
        wait_until(lambda: self.child(lost)["state"] == "CHILD_STATE_FAULTED", "child faulted")
        run(self.a, "nexus", "children", VOLUME_UUID)

        say("start node-c again (its pool is imported) and bring its child back online")
        self.c.pools = [f"vpool-node-c={self.workdir / 'node-c.img'}"]
        self.c.start()
        run(self.a, "nexus", "child", "online", VOLUME_UUID, lost)
        wait_until(lambda: self.child(lost)["state"] == "CHILD_STATE_ONLINE", "child online")
        run(self.a, "nexus", "children", VOLUME_UUID)
        run(self.a, "rebuild", "history", VOLUME_UUID)
        (record,) = query(self.a, "rebuild", "history", VOLUME_UUID)
        if not record["is_partial"]:
            raise DemoFailed("the child that came back was not rebuilt partially")

        data = asyncio.run(read_through(self.nexus_uri, 2 * half, DEMO_HOST_NQN))
        if data != first + second:
            raise DemoFailed("the volume does not read back as written")
        say(f"the volume reads back as written (sha256 {digest(first)}, {digest(second)})")

    def check_replicas(self) -> None:
        run(self.a, "nexus", "destroy", VOLUME_UUID)
        say("each replica read directly over NVMe/TCP: all three hold the same bytes")
        local = run(self.a, "replica", "share", "vpool", "vol-a").strip()
        uris = [local, *self.children[1:]]
        images = [asyncio.run(read_through(u, VOLUME_MIB << 20, READER_NQN)) for u in uris]
        for uri, image in zip(uris, images, strict=True):
            print(f"{digest(image)}  {uri}")
        if len({digest(image) for image in images}) != 1:
            raise DemoFailed("the replicas differ")
