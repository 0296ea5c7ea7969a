"""The cluster store conformance suite (DESIGN.md section 11).

Every `ClusterStore` implementation runs it by subclassing `ClusterStoreConformance` in
its own test module and providing a sync `store_location` fixture: a location that
`open_store` understands (``etcd://…`` or the path of an embedded store) and that every
store the suite opens there shares, as the core agents of one cluster would. The class
attribute `ttl` is the lease TTL the lease tests use (etcd rounds TTLs up to 2 s).

Several tests may share one backing store (a module's etcd): every key and lease name a
test uses lies under its own `root` prefix, so tests never see each other's keys.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import signal
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import ClassVar

import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from mayastor.control.store import (
    ClusterStore,
    Delete,
    Entry,
    NotLeader,
    Operation,
    Put,
    RevisionMismatch,
    open_store,
)
from mayastor.errors import InvalidArgument, StoreUnavailable

OpenStore = Callable[[], Awaitable[ClusterStore]]

#: keys whose characters a store could get wrong: separators, SQL and glob wildcards,
#: quotes, control characters, NUL, non-ASCII (2-, 3- and 4-byte UTF-8), the highest
#: code points, and neighbours in byte order.
ODD_KEY_SUFFIXES = [
    "plain",
    "with space",
    "tab\there",
    "new\nline",
    "nul\x00inside",
    "nul\x00",
    "percent%",
    "under_score",
    "star*",
    "question?",
    "[bracket]",
    "'single'",
    '"double"',
    "back\\slash",
    "slash/deeper/still",
    "dots/../..",
    "ümlaut",
    "日本語",
    "emoji😀",
    "\uffff",
    "\U0010ffff",
    "\x7f",
    "a",
    "a\x00",
    "a\x01",
    "ab",
    "b",
]

#: values a store must keep byte for byte.
ODD_VALUES = [
    b"",
    b"\x00",
    b"\x00" * 1000,
    bytes(range(256)),
    b"\xff\xfe\xfd not utf-8 \xc3\x28",
    b'{"json": true, "nested": {"list": [1, 2, 3]}}',
    "ünïcödé".encode(),
    os.urandom(64 << 10),
]

#: a Python program that holds a lease in a process of its own: it campaigns, prints
#: "held TOKEN" once it holds the lease, then keeps it renewed until it is killed.
HOLDER_PROGRAM = """
import asyncio, sys
from mayastor.control.store import open_store

async def main() -> None:
    location, name, holder, ttl = sys.argv[1:5]
    store = open_store(location)
    lease = await store.campaign(name, holder, float(ttl))
    print("held", lease.token, flush=True)
    await asyncio.Event().wait()

asyncio.run(main())
"""


class LeaseHolderProcess:
    """A child process that holds (or waits for) a lease in the store at `location`."""

    def __init__(self, location: str, name: str, ttl: float, holder: str = "child") -> None:
        self.argv = [sys.executable, "-c", HOLDER_PROGRAM, location, name, holder, str(ttl)]
        self.proc: asyncio.subprocess.Process | None = None
        self.token: int | None = None

    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            *self.argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
        )

    async def wait_held(self, timeout: float = 60.0) -> int:
        """Until the child says it holds the lease; its token."""
        assert self.proc is not None
        assert self.proc.stdout is not None
        async with asyncio.timeout(timeout):
            line = await self.proc.stdout.readline()
        words = line.decode().split()
        assert words[:1] == ["held"], f"the lease holder process said {line!r}"
        self.token = int(words[1])
        return self.token

    async def kill(self) -> None:
        """SIGKILL, as a crash would, and reap it."""
        if self.proc is not None and self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGKILL)
            await self.proc.wait()


async def wait_until(
    condition: Callable[[], Awaitable[bool]], what: str, timeout: float = 60.0
) -> None:
    """Poll the async `condition` until it is true; fail with `what` after `timeout` s."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await condition():
        if loop.time() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        await asyncio.sleep(0.05)


async def entries(store: ClusterStore, prefix: str) -> dict[str, tuple[bytes, int]]:
    return {e.key: (e.value, e.revision) for e in await store.list(prefix)}


class ClusterStoreConformance:
    """Behaviours every ClusterStore shares; subclasses supply `store_location`."""

    ttl: ClassVar[float] = 2.0
    """The lease TTL of the lease tests: long enough that a loaded machine (an fsync, a
    busy event loop) does not miss a renewal, since some tests wait past an expiry."""

    # ------------------------------------------------------------------ fixtures

    @pytest.fixture
    def root(self) -> str:
        """This test's own key prefix (ends with '/')."""
        return f"/conformance/{uuid.uuid4().hex}/"

    @pytest.fixture
    async def open_more(self, store_location: str) -> AsyncIterator[OpenStore]:
        """Opens more stores on the same location (other agents); closed at the end."""
        opened: list[ClusterStore] = []

        async def make() -> ClusterStore:
            store = open_store(store_location)
            opened.append(store)
            return store

        yield make
        for store in opened:
            await store.close()

    @pytest.fixture
    async def store(self, open_more: OpenStore) -> ClusterStore:
        return await open_more()

    # ------------------------------------------------------------------ get, put, delete

    async def test_get_of_a_missing_key_is_none(self, store: ClusterStore, root: str) -> None:
        assert await store.get(root + "missing") is None

    async def test_put_then_get_returns_the_value_at_the_revision_put_returned(
        self, store: ClusterStore, root: str
    ) -> None:
        revision = await store.put(root + "k", b"v1")
        assert await store.get(root + "k") == Entry(root + "k", b"v1", revision)

    async def test_a_second_put_replaces_the_value_and_moves_the_revision_on(
        self, store: ClusterStore, root: str
    ) -> None:
        first = await store.put(root + "k", b"v1")
        second = await store.put(root + "k", b"v2")
        assert second > first
        assert await store.get(root + "k") == Entry(root + "k", b"v2", second)

    async def test_delete_removes_the_key_and_says_whether_it_was_there(
        self, store: ClusterStore, root: str
    ) -> None:
        await store.put(root + "k", b"v")
        await store.put(root + "other", b"w")
        assert await store.delete(root + "k") is True
        assert await store.get(root + "k") is None
        assert await store.delete(root + "k") is False
        assert await store.delete(root + "never") is False
        assert (await store.get(root + "other")) is not None

    async def test_values_are_kept_byte_for_byte(self, store: ClusterStore, root: str) -> None:
        for i, value in enumerate(ODD_VALUES):
            await store.put(f"{root}{i}", value)
        for i, value in enumerate(ODD_VALUES):
            entry = await store.get(f"{root}{i}")
            assert entry is not None
            assert type(entry.value) is bytes
            assert entry.value == value, i
        listed = await store.list(root)
        assert {e.key: e.value for e in listed} == {
            f"{root}{i}": v for i, v in enumerate(ODD_VALUES)
        }

    async def test_keys_with_odd_characters_are_kept_apart_and_listed_in_key_order(
        self, store: ClusterStore, root: str
    ) -> None:
        keys = [root + suffix for suffix in ODD_KEY_SUFFIXES]
        for i, key in enumerate(keys):
            await store.put(key, str(i).encode())
        for i, key in enumerate(keys):
            entry = await store.get(key)
            assert entry is not None
            assert entry.key == key
            assert entry.value == str(i).encode(), repr(key)
        listed = await store.list(root)
        assert [e.key for e in listed] == sorted(keys)
        assert [e.value for e in listed] == [str(keys.index(k)).encode() for k in sorted(keys)]
        # a prefix ending inside the odd part still finds exactly its keys
        for prefix in ("nul\x00", "a\x00", "emoji", "[", "percent%", "a"):
            found = [e.key for e in await store.list(root + prefix)]
            assert found == sorted(k for k in keys if k.startswith(root + prefix)), repr(prefix)

    async def test_an_empty_key_is_an_invalid_argument_and_stores_nothing(
        self, store: ClusterStore, root: str
    ) -> None:
        with pytest.raises(InvalidArgument):
            await store.put("", b"x")
        with pytest.raises(InvalidArgument):
            await store.commit([Put(root + "a", b"x"), Put("", b"x")])
        assert await store.list(root) == []

    # ------------------------------------------------------------------ list

    async def test_list_returns_every_entry_under_the_prefix_in_key_order(
        self, store: ClusterStore, root: str
    ) -> None:
        names = ["m", "b", "z", "a/1", "a", "c/d/e", "0", "B"]
        revisions = {}
        for name in names:
            revisions[root + name] = await store.put(root + name, name.encode())
        listed = await store.list(root)
        assert [e.key for e in listed] == sorted(root + n for n in names)
        for entry in listed:
            assert entry.value == entry.key.removeprefix(root).encode()
            assert entry.revision == revisions[entry.key]

    async def test_list_does_not_bleed_into_neighbouring_prefixes(
        self, store: ClusterStore, root: str
    ) -> None:
        for name in ("kind/", "kind/x", "kind/y/z", "kind", "kind0", "kinda/x", "kind.x", "kine"):
            await store.put(root + name, b"v")
        assert [e.key for e in await store.list(root + "kind/")] == [
            root + "kind/",
            root + "kind/x",
            root + "kind/y/z",
        ]
        assert [e.key for e in await store.list(root + "kind/y/")] == [root + "kind/y/z"]
        assert [e.key for e in await store.list(root + "kinda")] == [root + "kinda/x"]
        assert await store.list(root + "kind/w") == []
        assert await store.list(root + "nothing/") == []

    async def test_list_of_the_empty_prefix_returns_every_key_in_order(
        self, store: ClusterStore, root: str
    ) -> None:
        mine = [root + n for n in ("b", "a", "c/d")]
        for key in mine:
            await store.put(key, b"v")
        everything = [e.key for e in await store.list("")]
        assert everything == sorted(everything)
        assert [k for k in everything if k.startswith(root)] == sorted(mine)

    async def test_listed_entries_equal_what_get_returns(
        self, store: ClusterStore, root: str
    ) -> None:
        for i in range(20):
            await store.put(f"{root}{i:02}", os.urandom(i))
        for entry in await store.list(root):
            assert await store.get(entry.key) == entry

    # ------------------------------------------------------------------ revisions

    async def test_revisions_increase_and_each_entry_carries_its_last_change(
        self, store: ClusterStore, root: str
    ) -> None:
        a1 = await store.put(root + "a", b"1")
        b1 = await store.put(root + "b", b"1")
        assert b1 > a1
        a2 = await store.put(root + "a", b"2")
        assert a2 > b1
        assert await store.delete(root + "b")
        c1 = await store.put(root + "c", b"1")
        assert c1 > a2
        assert (await entries(store, root)) == {
            root + "a": (b"2", a2),
            root + "c": (b"1", c1),
        }
        b2 = await store.put(root + "b", b"again")
        assert b2 > c1
        entry = await store.get(root + "b")
        assert entry is not None
        assert entry.revision == b2

    async def test_put_with_revision_0_creates_only(self, store: ClusterStore, root: str) -> None:
        created = await store.put(root + "k", b"first", revision=0)
        with pytest.raises(RevisionMismatch):
            await store.put(root + "k", b"second", revision=0)
        assert await store.get(root + "k") == Entry(root + "k", b"first", created)

    async def test_put_with_the_current_revision_succeeds_and_with_a_stale_one_is_refused(
        self, store: ClusterStore, root: str
    ) -> None:
        first = await store.put(root + "k", b"1")
        second = await store.put(root + "k", b"2", revision=first)
        assert second > first
        for wrong in (first, second + 1, second + 1000, -1):
            with pytest.raises(RevisionMismatch):
                await store.put(root + "k", b"wrong", revision=wrong)
        assert await store.get(root + "k") == Entry(root + "k", b"2", second)

    async def test_put_naming_a_revision_of_a_missing_key_is_refused_and_creates_nothing(
        self, store: ClusterStore, root: str
    ) -> None:
        other = await store.put(root + "other", b"x")
        with pytest.raises(RevisionMismatch):
            await store.put(root + "k", b"v", revision=other)
        await store.put(root + "gone", b"x")
        gone = await store.get(root + "gone")
        assert gone is not None
        await store.delete(root + "gone")
        with pytest.raises(RevisionMismatch):
            await store.put(root + "gone", b"v", revision=gone.revision)
        assert await store.get(root + "k") is None
        assert await store.get(root + "gone") is None

    async def test_delete_with_a_stale_revision_is_refused_and_keeps_the_entry(
        self, store: ClusterStore, root: str
    ) -> None:
        first = await store.put(root + "k", b"1")
        second = await store.put(root + "k", b"2")
        for wrong in (first, second + 1, 0):
            with pytest.raises(RevisionMismatch):
                await store.delete(root + "k", revision=wrong)
        assert await store.get(root + "k") == Entry(root + "k", b"2", second)
        assert await store.delete(root + "k", revision=second) is True
        assert await store.get(root + "k") is None

    async def test_delete_of_a_missing_key_with_a_revision_is_refused_and_with_0_is_false(
        self, store: ClusterStore, root: str
    ) -> None:
        with pytest.raises(RevisionMismatch):
            await store.delete(root + "k", revision=5)
        assert await store.delete(root + "k", revision=0) is False
        assert await store.get(root + "k") is None

    async def test_two_clients_comparing_the_same_revision_let_exactly_one_win(
        self, open_more: OpenStore, root: str
    ) -> None:
        a, b = await open_more(), await open_more()
        base = await a.put(root + "k", b"base")
        writes = [
            (a if i % 2 else b).put(root + "k", f"writer {i}".encode(), revision=base)
            for i in range(8)
        ]
        results = await asyncio.gather(*writes, return_exceptions=True)
        won = [(i, r) for i, r in enumerate(results) if isinstance(r, int)]
        lost = [r for r in results if isinstance(r, RevisionMismatch)]
        assert len(won) == 1, results
        assert len(lost) == 7, results
        (winner, revision), *_ = won
        assert await b.get(root + "k") == Entry(root + "k", f"writer {winner}".encode(), revision)

    async def test_a_second_client_sees_the_first_ones_writes_at_once(
        self, open_more: OpenStore, root: str
    ) -> None:
        a, b = await open_more(), await open_more()
        revision = await a.put(root + "k", b"from a")
        assert await b.get(root + "k") == Entry(root + "k", b"from a", revision)
        assert await b.delete(root + "k", revision=revision)
        assert await a.get(root + "k") is None
        assert await a.list(root) == []

    # ------------------------------------------------------------------ commit

    async def test_commit_applies_every_put_and_delete_at_one_new_revision(
        self, store: ClusterStore, root: str
    ) -> None:
        old = await store.put(root + "old", b"x")
        keep = await store.put(root + "keep", b"k")
        revision = await store.commit(
            [
                Put(root + "new", b"n", revision=0),
                Put(root + "any", b"a"),
                Delete(root + "old", revision=old),
                Delete(root + "absent"),
            ]
        )
        assert revision > keep
        assert await entries(store, root) == {
            root + "new": (b"n", revision),
            root + "any": (b"a", revision),
            root + "keep": (b"k", keep),
        }

    async def test_a_commit_with_one_failing_check_applies_nothing(
        self, store: ClusterStore, root: str
    ) -> None:
        a = await store.put(root + "a", b"a")
        b = await store.put(root + "b", b"b")
        before = await entries(store, root)
        failing: list[Operation] = [
            Put(root + "a", b"x", revision=b),  # stale
            Put(root + "b", b"x", revision=0),  # exists
            Put(root + "c", b"x", revision=a),  # missing
            Delete(root + "a", revision=b),  # stale
            Delete(root + "c", revision=a),  # missing
        ]
        good: list[Operation] = [
            Put(root + "a", b"new a", revision=a),
            Delete(root + "b", revision=b),
            Put(root + "d", b"d", revision=0),
        ]
        for bad in failing:
            others = [op for op in good if op.key != bad.key]
            orders: list[list[Operation]] = [[bad, *others], [*others, bad]]
            for ops in orders:
                with pytest.raises(RevisionMismatch):
                    await store.commit(ops)
                assert await entries(store, root) == before, ops

    async def test_a_commit_naming_a_key_twice_is_refused_and_applies_nothing(
        self, store: ClusterStore, root: str
    ) -> None:
        await store.put(root + "a", b"a")
        before = await entries(store, root)
        twice: list[list[Operation]] = [
            [Put(root + "b", b"1"), Put(root + "b", b"2")],
            [Put(root + "a", b"1"), Delete(root + "a")],
            [Delete(root + "a"), Put(root + "c", b"c"), Delete(root + "a")],
        ]
        for ops in twice:
            with pytest.raises(ValueError, match="twice"):
                await store.commit(ops)
            assert await entries(store, root) == before

    async def test_an_empty_commit_changes_nothing(self, store: ClusterStore, root: str) -> None:
        await store.put(root + "a", b"a")
        before = await entries(store, root)
        assert isinstance(await store.commit([]), int)
        assert await entries(store, root) == before

    async def test_a_commit_of_many_operations_is_applied_whole(
        self, store: ClusterStore, root: str
    ) -> None:
        revision = await store.commit([Put(f"{root}{i:03}", bytes([i]), 0) for i in range(64)])
        listed = await store.list(root)
        assert [(e.key, e.value, e.revision) for e in listed] == [
            (f"{root}{i:03}", bytes([i]), revision) for i in range(64)
        ]

    def test_the_store_behaves_as_a_dict_under_random_writes(
        self, store_location: str, root: str
    ) -> None:
        loop = asyncio.new_event_loop()
        store = open_store(store_location)
        examples = itertools.count()

        class Machine(StoreModelMachine):
            def __init__(self) -> None:
                super().__init__(store, loop, f"{root}{next(examples)}/")

        try:
            run_state_machine_as_test(
                Machine,
                settings=settings(
                    max_examples=25,
                    stateful_step_count=25,
                    deadline=None,
                    suppress_health_check=[HealthCheck.too_slow],
                    # no explain phase: tracing every line of a gRPC client takes minutes
                    phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink],
                ),
            )
        finally:
            loop.run_until_complete(store.close())
            loop.close()

    # ------------------------------------------------------------------ leases

    async def test_one_holder_at_a_time_and_the_waiting_one_gets_the_lease_on_resign(
        self, open_more: OpenStore, root: str
    ) -> None:
        a, b = await open_more(), await open_more()
        name = root + "leader"
        first = await a.campaign(name, "agent-a", self.ttl)
        assert first.held
        assert first.holder == "agent-a"
        assert first.name == name
        second = asyncio.ensure_future(b.campaign(name, "agent-b", self.ttl))
        try:
            await asyncio.sleep(1.5 * self.ttl)  # past the first expiry: a renews meanwhile
            assert not second.done()
            assert first.held
            await a.resign(first)
            assert not first.held
            lease = await asyncio.wait_for(second, 30 * self.ttl)
        finally:
            second.cancel()
        assert lease.held
        assert lease.holder == "agent-b"
        assert lease.token != first.token
        await b.resign(lease)

    async def test_lease_holder_names_who_holds_a_lease_and_none_once_it_is_free(
        self, open_more: OpenStore, root: str
    ) -> None:
        a, b = await open_more(), await open_more()
        name = root + "leader"
        assert await b.lease_holder(name) is None
        lease = await a.campaign(name, "agent-a", self.ttl)
        assert await b.lease_holder(name) == "agent-a"
        await a.resign(lease)
        assert await b.lease_holder(name) is None

    async def test_a_lease_whose_holder_closed_without_resigning_expires_and_is_taken_over(
        self, open_more: OpenStore, root: str
    ) -> None:
        a, b = await open_more(), await open_more()
        name = root + "leader"
        first = await a.campaign(name, "agent-a", self.ttl)
        await a.close()
        lease = await asyncio.wait_for(b.campaign(name, "agent-b", self.ttl), 30 * self.ttl)
        assert lease.held
        assert lease.token != first.token
        b.guard = lease
        await b.put(root + "k", b"b acts")
        await b.resign(lease)

    async def test_a_lease_whose_holder_process_was_killed_is_taken_over(
        self, store: ClusterStore, store_location: str, root: str
    ) -> None:
        name = root + "leader"
        child = LeaseHolderProcess(store_location, name, self.ttl)
        await child.start()
        try:
            token = await child.wait_held()
            waiting = asyncio.ensure_future(store.campaign(name, "agent-b", self.ttl))
            await asyncio.sleep(1.5 * self.ttl)  # past the first expiry
            assert not waiting.done(), "a lease kept renewed by a live process was taken over"
            await child.kill()
            lease = await asyncio.wait_for(waiting, 30 * self.ttl)
        finally:
            await child.kill()
        assert lease.held
        assert lease.token != token
        await store.resign(lease)

    async def test_guarded_writes_of_the_holder_go_through_and_reads_are_never_guarded(
        self, store: ClusterStore, root: str
    ) -> None:
        lease = await store.campaign(root + "leader", "agent-a", self.ttl)
        store.guard = lease
        revision = await store.put(root + "k", b"v", revision=0)
        await store.commit([Put(root + "j", b"w"), Delete(root + "k", revision=revision)])
        assert await store.delete(root + "j")
        await store.put(root + "k", b"v2")
        await store.resign(lease)
        assert (await store.get(root + "k")) is not None
        assert [e.key for e in await store.list(root)] == [root + "k"]

    async def test_guarded_writes_after_resign_are_refused_and_change_nothing(
        self, store: ClusterStore, root: str
    ) -> None:
        lease = await store.campaign(root + "leader", "agent-a", self.ttl)
        store.guard = lease
        revision = await store.put(root + "k", b"v")
        await store.resign(lease)
        before = await entries(store, root)
        await self._every_write_is_refused(store, root, revision)
        assert await entries(store, root) == before
        store.guard = None
        await store.put(root + "k", b"unguarded")

    async def test_a_guarded_write_by_a_holder_that_lost_the_lease_is_refused(
        self, open_more: OpenStore, root: str
    ) -> None:
        a, b = await open_more(), await open_more()
        name = root + "leader"
        old = await a.campaign(name, "agent-a", self.ttl)
        a.guard = old
        revision = await a.put(root + "k", b"written by a")
        # a stalls: it stops renewing (as a process stopped by SIGSTOP or a long pause)
        assert old.keeper is not None
        old.keeper.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await old.keeper
        new = await asyncio.wait_for(b.campaign(name, "agent-b", self.ttl), 30 * self.ttl)
        b.guard = new
        await b.put(root + "b", b"written by b")
        before = await entries(b, root)
        await self._every_write_is_refused(a, root, revision)
        assert await entries(b, root) == before
        await b.resign(new)

    async def _every_write_is_refused(self, store: ClusterStore, root: str, revision: int) -> None:
        with pytest.raises(NotLeader):
            await store.put(root + "k", b"late", revision=revision)
        with pytest.raises(NotLeader):
            await store.put(root + "new", b"late")
        with pytest.raises(NotLeader):
            await store.delete(root + "k")
        with pytest.raises(NotLeader):
            await store.commit([Put(root + "new", b"late"), Delete(root + "k")])

    async def test_a_resigned_holder_campaigning_again_gets_a_new_tenure(
        self, store: ClusterStore, root: str
    ) -> None:
        name = root + "leader"
        first = await store.campaign(name, "agent-a", self.ttl)
        await store.resign(first)
        second = await store.campaign(name, "agent-a", self.ttl)
        assert second.held
        assert second.token != first.token
        store.guard = first
        with pytest.raises(NotLeader):
            await store.put(root + "k", b"v")
        store.guard = second
        await store.put(root + "k", b"v")
        await store.resign(second)

    async def test_leases_of_different_names_are_held_independently(
        self, open_more: OpenStore, root: str
    ) -> None:
        a, b = await open_more(), await open_more()
        one = await a.campaign(root + "one", "agent-a", self.ttl)
        two = await asyncio.wait_for(b.campaign(root + "two", "agent-b", self.ttl), 30 * self.ttl)
        assert one.held
        assert two.held
        await a.resign(one)
        await b.resign(two)

    async def test_resign_is_idempotent(self, store: ClusterStore, root: str) -> None:
        lease = await store.campaign(root + "leader", "agent-a", self.ttl)
        await store.resign(lease)
        await store.resign(lease)
        assert not lease.held
        assert lease.lost.is_set()

    # ------------------------------------------------------------------ close

    async def test_close_is_idempotent_and_a_closed_store_refuses_calls(
        self, open_more: OpenStore, root: str
    ) -> None:
        store = await open_more()
        await store.put(root + "k", b"v")
        lease = await store.campaign(root + "leader", "agent-a", self.ttl)
        await store.close()
        await store.close()
        assert lease.lost.is_set(), "a lease nobody renews any more must not look held"
        with pytest.raises(StoreUnavailable):
            await store.get(root + "k")
        with pytest.raises(StoreUnavailable):
            await store.put(root + "k", b"after close")
        other = await open_more()
        entry = await other.get(root + "k")
        assert entry is not None
        assert entry.value == b"v"


# ============================================================================ model


@dataclass
class _Pick:
    """How a generated write names its expected revision."""

    how: str  # none, zero, current, stale, future


_REVISION_PICKS = st.sampled_from(["none", "zero", "current", "stale", "future"]).map(_Pick)
_KEYS = st.sampled_from(["a", "b", "ab", "a/b", "b\x00", "é", "z" * 40])
_VALUES = st.binary(max_size=64)


class StoreModelMachine(RuleBasedStateMachine):
    """The store against a dict: random puts, deletes and commits, right and wrong revisions.

    Every key lives under `prefix`, fresh for each example; the machine drives the store
    on `loop` (hypothesis' state machines are not coroutines).
    """

    def __init__(self, store: ClusterStore, loop: asyncio.AbstractEventLoop, prefix: str) -> None:
        super().__init__()
        self.store = store
        self.loop = loop
        self.prefix = prefix
        self.model: dict[str, tuple[bytes, int]] = {}
        self.last_revision = 0

    def run(self, call: Awaitable[object]) -> object:
        return self.loop.run_until_complete(call)

    def expected(self, key: str, pick: _Pick) -> int | None:
        found = self.model.get(key)
        current = found[1] if found else 0
        if pick.how == "none":
            return None
        if pick.how == "zero":
            return 0
        if pick.how == "current":
            return current
        if pick.how == "stale":
            return current - 1 if found else max(1, self.last_revision)
        return current + 1000

    def holds(self, key: str, revision: int | None) -> bool:
        if revision is None:
            return True
        found = self.model.get(key)
        return (found[1] if found else 0) == revision

    def new_revision(self, revision: object) -> int:
        assert isinstance(revision, int)
        assert revision > self.last_revision, (revision, self.last_revision)
        self.last_revision = revision
        return revision

    @rule(key=_KEYS, value=_VALUES, pick=_REVISION_PICKS)
    def put(self, key: str, value: bytes, pick: _Pick) -> None:
        key = self.prefix + key
        revision = self.expected(key, pick)
        if self.holds(key, revision):
            new = self.new_revision(self.run(self.store.put(key, value, revision=revision)))
            self.model[key] = (value, new)
        else:
            with pytest.raises(RevisionMismatch):
                self.run(self.store.put(key, value, revision=revision))

    @rule(key=_KEYS, pick=_REVISION_PICKS)
    def delete(self, key: str, pick: _Pick) -> None:
        key = self.prefix + key
        revision = self.expected(key, pick)
        if self.holds(key, revision):
            existed = self.run(self.store.delete(key, revision=revision))
            assert existed is (key in self.model)
            self.model.pop(key, None)
        else:
            with pytest.raises(RevisionMismatch):
                self.run(self.store.delete(key, revision=revision))

    @rule(
        ops=st.lists(
            st.tuples(_KEYS, st.one_of(st.none(), _VALUES), _REVISION_PICKS),
            min_size=1,
            max_size=5,
            unique_by=lambda op: op[0],
        )
    )
    def commit(self, ops: list[tuple[str, bytes | None, _Pick]]) -> None:
        operations: list[Operation] = []
        for key, value, pick in ops:
            full = self.prefix + key
            revision = self.expected(full, pick)
            if value is None:
                operations.append(Delete(full, revision))
            else:
                operations.append(Put(full, value, revision))
        if all(self.holds(op.key, op.revision) for op in operations):
            changes = any(isinstance(op, Put) or op.key in self.model for op in operations)
            result = self.run(self.store.commit(operations))
            new = self.new_revision(result) if changes else 0
            for op in operations:
                if isinstance(op, Put):
                    self.model[op.key] = (op.value, new)
                else:
                    self.model.pop(op.key, None)
        else:
            with pytest.raises(RevisionMismatch):
                self.run(self.store.commit(operations))

    @precondition(lambda self: bool(self.model))
    @rule(data=st.data())
    def get(self, data: st.DataObject) -> None:
        key = data.draw(st.sampled_from(sorted(self.model)))
        value, revision = self.model[key]
        assert self.run(self.store.get(key)) == Entry(key, value, revision)

    @invariant()
    def the_listing_is_the_model_in_key_order(self) -> None:
        listed = self.run(self.store.list(self.prefix))
        assert isinstance(listed, list)
        assert [(e.key, e.value, e.revision) for e in listed] == [
            (key, *self.model[key]) for key in sorted(self.model)
        ]
