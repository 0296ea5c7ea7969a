"""A real io-engine serving one replica over NVMe/TCP, for the hostile-host benchmarks
(`target_bounds.py`, `pdu_fuzz.py`); run with this folder on ``sys.path``.

`served_replica` starts `mayastor` (with any extra flags) on a pool over a sparse file,
creates and shares thick replicas for any host NQN under ``nqn.2014-08.org.nvmexpress:``,
and yields where to connect (the first replica; `others` the rest: the same target);
`rss_bytes` and `cpu_seconds` read the engine's /proc.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from mayastor.cluster.processes import EngineProcess

HOST_PREFIX = "nqn.2014-08.org.nvmexpress:"
CLK_TCK = os.sysconf("SC_CLK_TCK")


@dataclass
class Replica:
    engine: EngineProcess
    pid: int
    host: str
    port: int
    nqn: str
    others: list[str]


@contextmanager
def served_replica(
    size_mb: int = 64,
    extra_args: Sequence[str] = (),
    workdir: str | None = None,
    count: int = 1,
) -> Iterator[Replica]:
    """A running io-engine with `count` shared replicas; stopped at the end."""
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        disk = Path(tmp) / "pool.img"
        with open(disk, "wb") as fh:
            fh.truncate((size_mb * count + 64) << 20)
        engine = EngineProcess("bench-node", Path(tmp), extra_args=extra_args)
        engine.start()
        try:
            engine.client("pool", "create", "p0", str(disk), check=True)
            shares = []
            for n in range(count):
                out = engine.client(
                    "replica", "create", "p0", f"r{n}", f"--size={size_mb}",
                    "--share", "nvmf", "--allowed-host", HOST_PREFIX + "*", check=True,
                )  # fmt: skip
                found = re.search(r"nvmf://([\d.]+):(\d+)/(\S+?)(?:\?|\s|$)", out.stdout)
                assert found is not None, out.stdout
                shares.append(found)
            assert engine.pid is not None
            first = shares[0]
            yield Replica(
                engine, engine.pid, first.group(1), int(first.group(2)), first.group(3),
                [m.group(3) for m in shares[1:]],
            )  # fmt: skip
        finally:
            engine.stop()


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for {pid}")


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK
