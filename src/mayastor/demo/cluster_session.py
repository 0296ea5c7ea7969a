"""The demo's session: a one-machine cluster, a replicated volume, a node lost and healed.

Every step is shown as an operator would type it (`mayastor-cluster`,
`kubectl-mayastor`, or the REST call made) with its output; the data moves over
NVMe/TCP through our initiator, connected as the volume's frontend node. A step that
does not do what it should raises `DemoFailed`.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

from mayastor.cluster.launcher import ClusterLayout
from mayastor.cluster.processes import free_port
from mayastor.demo.terminal import DemoFailed, say, wait_until
from mayastor.demo.volume_io import read_chunks, write_chunks
from mayastor.restclient import RestClient
from mayastor.restclient.errors import RestError

VOLUME_SIZE = 64 << 20
FRONTEND = "demo-app"
FRONTEND_NQN = f"nqn.2019-05.io.openebs:node-name:{FRONTEND}"
CHUNK = 1 << 20
_MODULES = {
    "mayastor-cluster": "mayastor.cluster.main",
    "kubectl-mayastor": "mayastor.kubectl.main",
}


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


class ClusterSession:
    """The cluster demo in `folder` (its processes are stopped by `close`)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.volume = str(uuid.uuid4())
        self.rest_port = free_port()
        self.rest_url = f"http://127.0.0.1:{self.rest_port}"
        self.rest = RestClient(self.rest_url)
        self.written: dict[int, str] = {}

    # ------------------------------------------------------------------ showing

    def command(self, program: str, *args: str, expect_ok: bool = True) -> str:
        """Run one of our commands as a user would, showing it and its output."""
        module = _MODULES[program]
        print(f"$ {program} {shlex.join(args)}", flush=True)
        result = subprocess.run(
            [sys.executable, "-m", module, *args], capture_output=True, text=True, timeout=300
        )
        out = (result.stdout + result.stderr).rstrip()
        if out:
            print(out, flush=True)
        if expect_ok and result.returncode != 0:
            raise DemoFailed(f"`{program} {shlex.join(args)}` failed ({result.returncode})")
        return result.stdout

    def kubectl(self, *args: str) -> str:
        return self.command("kubectl-mayastor", "-r", self.rest_url, *args)

    def rest_call(self, method: str, path: str, body: dict[str, Any] | None) -> None:
        shown = f" -d '{json.dumps(body)}'" if body is not None else ""
        print(f"$ curl -X {method} {self.rest_url}/v0{path}{shown}", flush=True)

    # ------------------------------------------------------------------ steps

    def up(self) -> ClusterLayout:
        say("a cluster on this machine: a core agent on its embedded store, three io-engines")
        say("with a pool each on a sparse file, all on loopback ports")
        self.command(
            "mayastor-cluster",
            "--dir",
            str(self.folder),
            "up",
            "--nodes",
            "3",
            "--disk-size",
            "256MiB",
            "--rest-port",
            str(self.rest_port),
            "--grpc-port",
            str(free_port()),
            "--engine-port-base",
            str(_free_port_range(9)),
        )
        layout = ClusterLayout.load(self.folder)
        if layout is None:
            raise DemoFailed("mayastor-cluster up left no cluster.json")
        self.kubectl("get", "nodes")
        self.kubectl("get", "pools")
        return layout

    def create_and_publish(self) -> str:
        say("a volume of 64 MiB with three replicas, created through the REST API")
        body = {"size": VOLUME_SIZE, "replicas": 3, "thin": False, "policy": {"self_heal": True}}
        self.rest_call("PUT", f"/volumes/{self.volume}", body)
        created = self.rest.create_volume(self.volume, size=VOLUME_SIZE, replicas=3)
        nodes = sorted(r["node"] for r in created["state"]["replica_topology"].values())
        print(f"volume {self.volume}: {created['state']['status']}, replicas on {', '.join(nodes)}")
        if len(set(nodes)) != 3:
            raise DemoFailed(f"the replicas should be on three nodes, not {nodes}")
        say(f"published for the application node {FRONTEND}: only its host NQN may connect")
        publish = {"protocol": "nvmf", "publish_context": {}, "frontend_node": FRONTEND}
        self.rest_call("PUT", f"/volumes/{self.volume}/target", publish)
        published = self.rest.publish_volume(self.volume, frontend_node=FRONTEND)
        uri = str(published["state"]["target"]["deviceUri"])
        print(f"target on {published['spec']['target']['node']}: {uri}")
        self.kubectl("get", "volumes")
        return uri

    def write(self, uri: str, first_mib: int, mib: int) -> None:
        say(f"write {mib} MiB at {first_mib} MiB over NVMe/TCP as {FRONTEND_NQN}")
        chunks = {first_mib + i: os.urandom(CHUNK) for i in range(mib)}
        write_chunks(uri, FRONTEND_NQN, {m * CHUNK: data for m, data in chunks.items()})
        for m, data in chunks.items():
            self.written[m] = _sha(data)
        print(f"{mib} MiB written and flushed; sha256 of the first: {self.written[first_mib]}")

    def verify(self, uri: str) -> None:
        say("read every MiB written back through the volume")
        got = read_chunks(uri, FRONTEND_NQN, [m * CHUNK for m in sorted(self.written)], CHUNK)
        wrong = [m for m in sorted(self.written) if _sha(got[m * CHUNK]) != self.written[m]]
        if wrong:
            raise DemoFailed(f"MiB {wrong} do not read back as written")
        print(f"{len(self.written)} MiB read back, every one as written")

    def status(self) -> str:
        return str(self.rest.get_volume(self.volume)["state"]["status"])

    def lose_and_heal(self, layout: ClusterLayout) -> None:
        victim = layout.nodes[2]
        target = self.rest.get_volume(self.volume)["spec"]["target"]["node"]
        if victim.name == target:
            victim = layout.nodes[1]
        say(f"{victim.name} dies: SIGKILL to its io-engine (pid {victim.pid})")
        if victim.pid is None:
            raise DemoFailed(f"no pid recorded for {victim.name}")
        os.kill(victim.pid, signal.SIGKILL)
        return_victim = victim.name
        uri = self.rest.get_volume(self.volume)["state"]["target"]["deviceUri"]
        self.write(uri, 16, 8)
        wait_until(lambda: self.status() == "Degraded", "the volume seen Degraded", 60)
        say(f"the nexus retired {return_victim}'s replica; the volume goes on, Degraded")
        self.kubectl("get", "volume", self.volume)
        self.kubectl("get", "volume-replica-topology", self.volume)
        say(f"bring {return_victim} back: `up` again starts what is not running")
        self.command("mayastor-cluster", "--dir", str(self.folder), "up")
        wait_until(lambda: self.status() == "Online", "the volume Online again", 120)
        say("the core agent imported its pool and brought the replica back: a partial rebuild")
        self.kubectl("get", "volume", self.volume)
        self.kubectl("get", "volume-replica-topology", self.volume)
        self.kubectl("get", "rebuild-history", self.volume)

    def down(self) -> None:
        say("stop the cluster (its data stays in the folder)")
        self.command("mayastor-cluster", "--dir", str(self.folder), "down")

    def run_all(self) -> None:
        layout = self.up()
        uri = self.create_and_publish()
        self.write(uri, 0, 8)
        self.lose_and_heal(layout)
        self.verify(uri)
        say("unpublish and delete the volume: nothing is left on any io-engine")
        self.kubectl("unpublish", "volume", self.volume)
        self.kubectl("delete", "volume", self.volume)
        replicas = self.rest.get_replicas()
        if replicas:
            raise DemoFailed(f"replicas left after the volume was deleted: {replicas}")
        self.kubectl("get", "volumes")

    def close(self) -> None:
        try:
            self.down()
        except (DemoFailed, RestError) as exc:
            print(f"stopping the cluster failed: {exc}", file=sys.stderr)
        self.rest.close()


def _free_port_range(count: int) -> int:
    """The first of `count` consecutive ports that were free a moment ago."""
    for _ in range(100):
        base = free_port()
        if base + count < 65536 and all(_port_free(base + i) for i in range(count)):
            return base
    raise DemoFailed(f"no {count} consecutive free ports found")


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True
