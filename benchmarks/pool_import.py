"""Pool import time with 10,000 lvols (replicas), and what it costs to create them.

On a sparse file (aio driver, default 4 MiB clusters) this:

1. creates a pool and 10,000 lvols, every `--thick-every`-th one thick (one cluster,
   zeroed on the file), the others thin, `--writers` of the thin ones written once
   (one cluster allocated each); lvols are created `--concurrency` at a time, as an
   io-engine under load would, so their metadata commits are grouped;
2. exports the pool (a checkpoint; the journal is empty afterwards) and imports it
   `--imports` times (export in between): the *clean import* time;
3. changes the properties of `--journal-changes` lvols one at a time (journal
   transactions, no checkpoint), closes the file without exporting (what a killed
   io-engine leaves) and imports again: the *import with journal replay* time.

Prints the figures and writes them as JSON (default
``benchmarks/results/pool_import.json``).

Usage: ``.venv/bin/python benchmarks/pool_import.py [--dir /var/tmp] [--lvols 10000]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import tempfile
import time
import uuid as uuid_mod
from pathlib import Path

from mayastor.bdev import AioDevice
from mayastor.lvs import DEFAULT_CLUSTER_SIZE, LvolProperties, Pool, ShareProtocol

RESULTS = Path(__file__).resolve().parent / "results" / "pool_import.json"
MIB = 1 << 20


def disk_bytes_for(args: argparse.Namespace) -> int:
    """A sparse file with room for the thick lvols and the written thin ones, twice over."""
    clusters = args.lvols // args.thick_every + args.writers + 64
    return int(max(clusters * args.cluster_mb * MIB * 2, 64 << 30))


async def run(args: argparse.Namespace, path: str) -> dict[str, object]:
    cluster = args.cluster_mb * MIB
    thick = args.lvols // args.thick_every
    disk_bytes = os.stat(path).st_size
    t0 = time.perf_counter()
    pool = await Pool.create(await AioDevice.open(path), "bench", disk=path, cluster_size=cluster)
    names = [f"replica-{i:05d}" for i in range(args.lvols)]

    async def make(i: int) -> None:
        await pool.create_lvol(
            names[i],
            cluster if i % args.thick_every == 0 else 10 * cluster,
            uuid=uuid_mod.uuid4(),
            thin=i % args.thick_every != 0,
            properties=LvolProperties(entity_id=str(uuid_mod.uuid4())),
        )

    for start in range(0, args.lvols, args.concurrency):
        await asyncio.gather(
            *(make(i) for i in range(start, min(start + args.concurrency, args.lvols)))
        )
    create_s = time.perf_counter() - t0

    writers = [pool.lookup(n) for i, n in enumerate(names) if i % args.thick_every][: args.writers]
    await asyncio.gather(
        *(lv.write(0, bytes(4096 // lv.block_size * lv.block_size)) for lv in writers)
    )
    md = pool.md_info
    summary = (len(pool.lvols()), pool.used, pool.committed)

    t0 = time.perf_counter()
    await pool.export()
    export_s = time.perf_counter() - t0

    imports = []
    for _ in range(args.imports):
        device = await AioDevice.open(path)
        t0 = time.perf_counter()
        pool = await Pool.import_(device, disk=path, name="bench")
        imports.append(time.perf_counter() - t0)
        assert (len(pool.lvols()), pool.used, pool.committed) == summary
        await pool.export()

    pool = await Pool.import_(await AioDevice.open(path), disk=path)
    props = LvolProperties(ShareProtocol.NVMF, ("nqn.2014-08.org.nvmexpress:uuid:bench",))
    for name in names[: args.journal_changes]:
        await pool.set_lvol_properties(pool.lookup(name), props)
    journal_pages = pool._store.journal_pos
    await pool.base.close()  # no export: what a killed io-engine leaves behind
    device = await AioDevice.open(path)
    t0 = time.perf_counter()
    pool = await Pool.import_(device, disk=path)
    replay_s = time.perf_counter() - t0
    changed = sum(lv.properties == props for lv in pool.lvols())
    assert changed == args.journal_changes, changed
    await pool.export()
    file_bytes = os.stat(path).st_blocks * 512

    return {
        "lvols": args.lvols,
        "thick_lvols": thick,
        "thin_lvols_written": len(writers),
        "cluster_size": cluster,
        "disk_bytes": disk_bytes,
        "file_bytes_allocated": file_bytes,
        "md_page_size": md.page_size,
        "md_pages": md.pages,
        "md_used_pages": md.used_pages,
        "create_concurrency": args.concurrency,
        "create_seconds": round(create_s, 3),
        "create_per_lvol_ms": round(create_s / args.lvols * 1000, 3),
        "export_seconds": round(export_s, 4),
        "clean_import_seconds": [round(s, 4) for s in imports],
        "clean_import_median_seconds": round(statistics.median(imports), 4),
        "journal_changes": args.journal_changes,
        "journal_pages": journal_pages,
        "import_with_replay_seconds": round(replay_s, 4),
        "python": platform.python_version(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cpus",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dir", default="/var/tmp", help="where the sparse file goes")
    parser.add_argument("--lvols", type=int, default=10_000)
    parser.add_argument("--thick-every", type=int, default=5)
    parser.add_argument("--writers", type=int, default=500, help="thin lvols written once")
    parser.add_argument("--cluster-mb", type=int, default=DEFAULT_CLUSTER_SIZE // MIB)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--imports", type=int, default=5)
    parser.add_argument("--journal-changes", type=int, default=1000)
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    try:
        import uvloop

        uvloop.install()
    except ImportError:  # pragma: no cover
        pass
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        path = os.path.join(tmp, "pool.img")
        with open(path, "wb") as fh:
            fh.truncate(disk_bytes_for(args))
        figures = asyncio.run(run(args, path))
    for key, value in figures.items():
        print(f"{key:30} {value}")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(figures, indent=2) + "\n")
    print(f"written to {args.output}")


if __name__ == "__main__":
    main()
