"""The embedded store (one SQLite file): the conformance suite, and what only it does.

Several processes may open one file (a standby core agent does): they share its keys
and its lease table. A write that returned is on disk, whatever happens to its process.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from pathlib import Path

import pytest

from mayastor.control.store import EmbeddedStore, NotLeader, Put, open_store
from mayastor.errors import StoreUnavailable
from tests.conformance.store import ClusterStoreConformance, LeaseHolderProcess


class TestEmbeddedStoreConformance(ClusterStoreConformance):
    ttl = 2.0

    @pytest.fixture
    def store_location(self, tmp_path: Path) -> str:
        return str(tmp_path / "state" / "store.db")


# ============================================================================ sharing


async def test_two_stores_on_one_file_see_each_others_writes(tmp_path: Path) -> None:
    a, b = EmbeddedStore(tmp_path / "store.db"), EmbeddedStore(tmp_path / "store.db")
    try:
        first = await a.put("/k", b"from a")
        second = await b.put("/k", b"from b", revision=first)
        assert second > first
        entry = await a.get("/k")
        assert entry is not None
        assert (entry.value, entry.revision) == (b"from b", second)
        third = await a.commit([Put("/j", b"j"), Put("/k", b"again", revision=second)])
        assert [(e.key, e.value, e.revision) for e in await b.list("/")] == [
            ("/j", b"j", third),
            ("/k", b"again", third),
        ]
    finally:
        await a.close()
        await b.close()


async def test_two_stores_on_one_file_share_one_lease(tmp_path: Path) -> None:
    a, b = EmbeddedStore(tmp_path / "store.db"), EmbeddedStore(tmp_path / "store.db")
    try:
        held = await a.campaign("/leader", "agent-a", 2.0)
        waiting = asyncio.ensure_future(b.campaign("/leader", "agent-b", 2.0))
        await asyncio.sleep(3.0)  # past the first expiry: a renews meanwhile
        assert not waiting.done(), "the second store took a lease the first one renews"
        a.guard = held
        await a.put("/k", b"a acts")
        await a.resign(held)
        taken = await asyncio.wait_for(waiting, 30)
        b.guard = taken
        await b.put("/k", b"b acts")
        with pytest.raises(NotLeader):
            await a.put("/k", b"a again")
        entry = await a.get("/k")
        assert entry is not None
        assert entry.value == b"b acts"
    finally:
        await a.close()
        await b.close()


async def test_a_lease_held_by_another_process_keeps_this_one_waiting_until_it_dies(
    tmp_path: Path,
) -> None:
    path = tmp_path / "store.db"
    child = LeaseHolderProcess(str(path), "/leader", 2.0)
    store = EmbeddedStore(path)
    await child.start()
    try:
        token = await child.wait_held()
        waiting = asyncio.ensure_future(store.campaign("/leader", "agent-b", 2.0))
        await asyncio.sleep(3.0)  # past the first expiry: the child renews meanwhile
        assert not waiting.done(), "a lease renewed by another live process was taken"
        await child.kill()
        lease = await asyncio.wait_for(waiting, 30)
        assert lease.token != token
        store.guard = lease
        await store.put("/k", b"mine now")
    finally:
        await child.kill()
        await store.close()


# ============================================================================ durability

WRITER_PROGRAM = """
import asyncio, os, signal, sys
from mayastor.control.store import EmbeddedStore, Put

async def main() -> None:
    store = EmbeddedStore(sys.argv[1])
    rounds = int(sys.argv[2])
    for i in range(rounds):
        revision = await store.commit(
            [Put(f"/group/{i}/{part}", f"{i}:{part}".encode()) for part in "abc"]
        )
        print(i, revision, flush=True)
    revision = await store.put("/last", b"written just before the kill")
    print("last", revision, flush=True)
    os.kill(os.getpid(), signal.SIGKILL)

asyncio.run(main())
"""


async def _run_writer(path: Path, rounds: int) -> list[str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        WRITER_PROGRAM,
        str(path),
        str(rounds),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with asyncio.timeout(120):
            out, err = await proc.communicate()
    finally:
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
    assert proc.returncode == -signal.SIGKILL, err.decode()
    return out.decode().splitlines()


async def test_a_write_that_returned_survives_a_sigkill_of_its_process_right_after(
    tmp_path: Path,
) -> None:
    path = tmp_path / "store.db"
    lines = await _run_writer(path, rounds=20)
    acknowledged = dict(line.split() for line in lines)
    assert "last" in acknowledged
    store = EmbeddedStore(path)
    try:
        last = await store.get("/last")
        assert last is not None
        assert last.value == b"written just before the kill"
        assert last.revision == int(acknowledged["last"])
        for i in range(20):
            group = await store.list(f"/group/{i}/")
            assert [(e.value, e.revision) for e in group] == [
                (f"{i}:{part}".encode(), int(acknowledged[str(i)])) for part in "abc"
            ]
        assert await store.put("/after", b"x") > last.revision
    finally:
        await store.close()


async def test_a_process_killed_in_the_middle_of_its_commits_leaves_each_whole_or_absent(
    tmp_path: Path,
) -> None:
    path = tmp_path / "store.db"
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        WRITER_PROGRAM,
        str(path),
        "100000",
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    acknowledged: dict[int, int] = {}
    try:
        assert proc.stdout is not None
        async with asyncio.timeout(120):
            while len(acknowledged) < 30:
                line = (await proc.stdout.readline()).decode().split()
                assert line, "the writer stopped early"
                acknowledged[int(line[0])] = int(line[1])
    finally:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()  # while it is committing more
        await proc.wait()
    store = EmbeddedStore(path)
    try:
        groups: dict[int, list[tuple[str, bytes, int]]] = {}
        for entry in await store.list("/group/"):
            i = int(entry.key.split("/")[2])
            groups.setdefault(i, []).append((entry.key, entry.value, entry.revision))
        for i, revision in acknowledged.items():
            assert [r for _, _, r in groups.get(i, [])] == [revision] * 3, i
        for i, group in groups.items():
            assert len(group) == 3, f"commit {i} is half there: {group}"
            assert len({r for _, _, r in group}) == 1
    finally:
        await store.close()


async def test_revisions_go_on_rising_after_the_file_is_opened_again(tmp_path: Path) -> None:
    store = EmbeddedStore(tmp_path / "store.db")
    last = 0
    for _ in range(3):
        last = await store.put("/k", b"v")
    await store.close()
    again = EmbeddedStore(tmp_path / "store.db")
    try:
        assert await again.put("/j", b"w") > last
    finally:
        await again.close()


# ============================================================================ leases by the clock


async def test_a_holder_whose_clock_passed_the_expiry_before_it_renewed_loses_the_lease(
    tmp_path: Path,
) -> None:
    now = [1_000_000.0]
    store = EmbeddedStore(tmp_path / "store.db", clock=lambda: now[0])
    try:
        lease = await store.campaign("/leader", "agent-a", 0.3)
        store.guard = lease
        await store.put("/k", b"while held")
        now[0] += 10  # the renewal comes after the expiry it set
        await asyncio.wait_for(lease.lost.wait(), 30)
        with pytest.raises(NotLeader):
            await store.put("/k", b"after the expiry")
        store.guard = None
        entry = await store.get("/k")
        assert entry is not None
        assert entry.value == b"while held"
    finally:
        await store.close()


async def test_an_expired_lease_refuses_guarded_writes_even_before_its_keeper_notices(
    tmp_path: Path,
) -> None:
    now = [1_000_000.0]
    store = EmbeddedStore(tmp_path / "store.db", clock=lambda: now[0])
    try:
        lease = await store.campaign("/leader", "agent-a", 5.0)
        store.guard = lease
        now[0] += 6
        assert lease.held  # the keeper renews only every TTL/3 of real time
        with pytest.raises(NotLeader, match="expired"):
            await store.put("/k", b"late")
        assert await store.list("/") == []
    finally:
        await store.close()


# ============================================================================ failures


async def test_a_file_that_is_not_a_database_is_store_unavailable_naming_it(
    tmp_path: Path,
) -> None:
    path = tmp_path / "store.db"
    path.write_bytes(b"not a database " * 1000)
    store = EmbeddedStore(path)
    with pytest.raises(StoreUnavailable, match=str(path)):
        await store.get("/k")
    with pytest.raises(StoreUnavailable, match=str(path)):
        await store.put("/k", b"v")
    await store.close()
    assert path.read_bytes() == b"not a database " * 1000


async def test_a_location_whose_folder_cannot_be_made_is_store_unavailable(
    tmp_path: Path,
) -> None:
    (tmp_path / "a-file").write_bytes(b"")
    store = EmbeddedStore(tmp_path / "a-file" / "store.db")
    with pytest.raises(StoreUnavailable, match="a-file"):
        await store.put("/k", b"v")
    await store.close()


async def test_the_store_and_its_folder_are_made_on_first_use(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "er" / "store.db"
    store = open_store(str(path))
    assert isinstance(store, EmbeddedStore)
    assert store.description == str(path)
    try:
        assert not path.exists()
        await store.put("/k", b"v")
        assert path.exists()
    finally:
        await store.close()


async def test_closing_a_store_never_used_creates_nothing(tmp_path: Path) -> None:
    store = EmbeddedStore(tmp_path / "never" / "store.db")
    await store.close()
    assert not (tmp_path / "never").exists()
