"""Whether the specs and what the io-engines hold agree, and a workload to disturb them.

The check of the control plane's crash and outage tests: after a fault and a settling
period, every volume's operation is finished or undone, every replica and nexus with
a spec exists where its spec says, nothing exists without one, and only the replicas a
target needs are shared.
"""

from __future__ import annotations

import json
import random
import uuid
from typing import Any

import httpx

from tests.support.cluster import TestCluster

MIB = 1 << 20


def engine_state(cluster: TestCluster) -> dict[str, dict[str, list[dict[str, Any]]]]:
    state = {}
    for name, engine in cluster.engines.items():
        found = {}
        for what in ("replica", "nexus"):
            out = engine.client("-o", "json", what, "list", check=True).stdout
            found[what] = json.loads(out) if out.strip() else []
        state[name] = found
    return state


def disagreements(cluster: TestCluster) -> list[str]:
    """Everything in which specs and io-engines differ now (empty when they agree)."""
    specs = cluster.rest.get("/specs")
    engines = engine_state(cluster)
    problems: list[str] = []
    volumes = {v["uuid"]: v for v in specs["volumes"]}
    replicas = {r["uuid"]: r for r in specs["replicas"]}
    nexuses = {n["uuid"]: n for n in specs["nexuses"]}
    for volume in volumes.values():
        if volume["status"] != "Created" or volume.get("operation"):
            problems.append(f"volume {volume['uuid']} unsettled: {volume['status']}")
        owned = [r for r in replicas.values() if r["owners"].get("volume") == volume["uuid"]]
        if len(owned) != volume["num_replicas"]:
            problems.append(
                f"volume {volume['uuid']} has {len(owned)} replicas, wants {volume['num_replicas']}"
            )
        target = volume.get("target")
        if target is not None and target.get("nexus") not in nexuses:
            problems.append(f"volume {volume['uuid']}: its target nexus has no spec")
    for replica in replicas.values():
        if replica["status"] != "Created":
            problems.append(f"replica {replica['uuid']} left {replica['status']}")
        if replica["owners"].get("volume") not in volumes:
            problems.append(f"replica {replica['uuid']} owned by no volume")
        on_engine = {r["uuid"]: r for r in engines[replica["node"]]["replica"]}
        found = on_engine.get(replica["uuid"])
        if found is None:
            problems.append(f"replica {replica['uuid']} missing on {replica['node']}")
            continue
        volume = volumes.get(replica["owners"].get("volume"), {})
        target = volume.get("target")
        should_share = target is not None and target["node"] != replica["node"]
        if (found["share"] == "NVMF") != should_share:
            problems.append(
                f"replica {replica['uuid']} shared={found['share']}, wants {should_share}"
            )
    for name, held in engines.items():
        problems.extend(
            f"orphan replica {found['uuid']} on {name}"
            for found in held["replica"]
            if found["uuid"] not in replicas
        )
        for nexus in held["nexus"]:
            spec = nexuses.get(nexus["uuid"])
            if spec is None or spec["node"] != name:
                problems.append(f"orphan nexus {nexus['uuid']} on {name}")
    for nexus in nexuses.values():
        owner = volumes.get(nexus.get("owner"))
        if owner is None or (owner.get("target") or {}).get("nexus") != nexus["uuid"]:
            problems.append(f"nexus spec {nexus['uuid']} is no volume's target")
        elif not any(n["uuid"] == nexus["uuid"] for n in engines[nexus["node"]]["nexus"]):
            problems.append(f"nexus {nexus['uuid']} missing on {nexus['node']}")
    return problems


Call = tuple[str, str, dict[str, Any] | None]
"""An HTTP method, a path under /v0 and a JSON body."""


class Workload:
    """Chooses the next operation from what exists, with a seeded random source."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def next_call(self, cluster: TestCluster) -> Call:
        volumes = cluster.rest.get("/volumes")["entries"]
        choices: list[Call] = []
        if len(volumes) < 3:
            choices.append(self._create())
        for volume in volumes:
            spec = volume["spec"]
            path = f"/volumes/{spec['uuid']}"
            publish = {
                "protocol": "nvmf",
                "publish_context": {},
                "frontend_node": "app-1",
                "node": f"node-{self.rng.randint(1, 3)}",
            }
            count = self.rng.choice([c for c in (1, 2, 3) if c != spec["num_replicas"]])
            choices += [
                ("PUT", f"{path}/target", publish),
                ("DELETE", f"{path}/target", None),
                ("PUT", f"{path}/replica_count/{count}", None),
                ("PUT", f"{path}/size", {"size": spec["size"] + 4 * MIB}),
                ("DELETE", path, None),
            ]
        return self.rng.choice(choices)

    def _create(self) -> Call:
        body = {
            "size": 8 * MIB,
            "replicas": self.rng.choice([1, 2, 3]),
            "thin": self.rng.random() < 0.5,
            "policy": {"self_heal": True},
        }
        return "PUT", f"/volumes/{uuid.UUID(int=self.rng.getrandbits(128))}", body


def fire(url: str, method: str, path: str, body: dict[str, Any] | None) -> None:
    try:
        httpx.request(method, f"{url}/v0{path}", json=body, timeout=30)
    except httpx.HTTPError:
        pass  # the core agent was killed under it
