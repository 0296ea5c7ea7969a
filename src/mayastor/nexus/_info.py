"""Nexus info: which children hold current data, kept where a crash cannot lose it.

After a crash the nexus must not read from a child that missed acknowledged writes.
So every change of a child's health is written to a store before the I/O that caused
it is acknowledged, and a nexus created again over the same uuid trusts only the
children the store names healthy. `clean_shutdown` says whether the healthy children
can differ: after an unclean stop the blocks of writes in flight may, so one is
trusted and the others are rebuilt.

The store is an interface (`NexusInfoStore`): the file store here for one machine,
etcd when the control plane comes. The JSON layout is Mayastor's:
``{"clean_shutdown": bool, "children": [{"uuid": str, "healthy": bool}, ...]}``.
"""

from __future__ import annotations

import asyncio
import json
import os
import uuid as uuid_mod
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

from mayastor.errors import CorruptMetadata, InvalidArgument, Unavailable


@dataclass(frozen=True, slots=True)
class ChildInfo:
    """One child as the store knows it.

    Attributes:
        uuid: the child's identity: ``?uuid=`` of its URI, else its device's uuid.
        healthy: True if it holds every acknowledged write.
    """

    uuid: uuid_mod.UUID
    healthy: bool


@dataclass(frozen=True, slots=True)
class NexusInfo:
    """What the store keeps for one nexus.

    Attributes:
        clean_shutdown: True if the nexus was shut down with no write in flight.
        children: its children, in the nexus's order.
    """

    clean_shutdown: bool
    children: tuple[ChildInfo, ...]

    def child(self, child_uuid: uuid_mod.UUID) -> ChildInfo | None:
        """The entry of the child with this uuid, if the info has one."""
        for child in self.children:
            if child.uuid == child_uuid:
                return child
        return None

    def to_json(self) -> bytes:
        """The stored form."""
        doc = {
            "clean_shutdown": self.clean_shutdown,
            "children": [{"uuid": str(c.uuid), "healthy": c.healthy} for c in self.children],
        }
        return json.dumps(doc, indent=1).encode()

    @classmethod
    def from_json(cls, data: bytes, where: str) -> NexusInfo:
        """Parse the stored form.

        Args:
            data: what `to_json` wrote.
            where: where it was read from, for the error message.

        Raises:
            CorruptMetadata: it is not a nexus info document.
        """
        try:
            doc = json.loads(data)
            if not isinstance(doc, dict) or not isinstance(doc["clean_shutdown"], bool):
                raise ValueError("not an object with a boolean clean_shutdown")
            children = []
            for entry in doc["children"]:
                if not isinstance(entry["healthy"], bool):
                    raise ValueError("healthy is not a boolean")
                children.append(ChildInfo(uuid_mod.UUID(entry["uuid"]), entry["healthy"]))
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise CorruptMetadata(f"nexus info {where}: not a nexus info document: {exc}") from exc
        return cls(clean_shutdown=doc["clean_shutdown"], children=tuple(children))


@runtime_checkable
class NexusInfoStore(Protocol):
    """Where nexus info is kept, keyed by the nexus uuid.

    `put` returns only once the info would survive a crash; a store that cannot
    promise that raises instead. A store is shared by the nexuses of one io-engine.
    """

    async def get(self, nexus_uuid: uuid_mod.UUID) -> NexusInfo | None:
        """The stored info, or None if there is none."""
        ...

    async def put(self, nexus_uuid: uuid_mod.UUID, info: NexusInfo) -> None:
        """Store `info` durably, replacing what was there."""
        ...

    async def delete(self, nexus_uuid: uuid_mod.UUID) -> None:
        """Forget the nexus; deleting what is not there is not an error."""
        ...


class MemoryNexusInfoStore:
    """A store that lives in this process: for tests and scratch volumes only.

    Nothing survives the process, so it protects against nothing but the nexus's own
    mistakes; use `FileNexusInfoStore` (or etcd) for volumes that matter.
    """

    def __init__(self) -> None:
        self._infos: dict[uuid_mod.UUID, NexusInfo] = {}

    async def get(self, nexus_uuid: uuid_mod.UUID) -> NexusInfo | None:
        return self._infos.get(nexus_uuid)

    async def put(self, nexus_uuid: uuid_mod.UUID, info: NexusInfo) -> None:
        self._infos[nexus_uuid] = info

    async def delete(self, nexus_uuid: uuid_mod.UUID) -> None:
        self._infos.pop(nexus_uuid, None)


class FileNexusInfoStore:
    """One JSON file per nexus in a directory, replaced atomically.

    A put writes a temporary file in the same directory, fsyncs it, renames it over
    the old one and fsyncs the directory, so a crash leaves the old info or the new,
    never a mix. The file work runs in a worker thread; puts for one nexus are
    serialised, so the last put wins on disk as it does in memory.

    Args:
        directory: where the files go; created on the first put.
    """

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)
        self._locks: dict[uuid_mod.UUID, asyncio.Lock] = {}

    def path_of(self, nexus_uuid: uuid_mod.UUID) -> Path:
        """The file that holds the info of `nexus_uuid`."""
        if not isinstance(nexus_uuid, uuid_mod.UUID):
            raise InvalidArgument(f"nexus info store: {nexus_uuid!r} is not a uuid.UUID")
        return self.directory / f"{nexus_uuid}.json"

    async def get(self, nexus_uuid: uuid_mod.UUID) -> NexusInfo | None:
        path = self.path_of(nexus_uuid)
        try:
            data = await asyncio.to_thread(path.read_bytes)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise Unavailable(f"nexus info store: cannot read {path}: {exc}") from exc
        return NexusInfo.from_json(data, str(path))

    async def put(self, nexus_uuid: uuid_mod.UUID, info: NexusInfo) -> None:
        path = self.path_of(nexus_uuid)
        payload = info.to_json()
        async with self._lock(nexus_uuid):
            try:
                await asyncio.to_thread(_replace_file, path, payload)
            except OSError as exc:
                raise Unavailable(f"nexus info store: cannot write {path}: {exc}") from exc

    async def delete(self, nexus_uuid: uuid_mod.UUID) -> None:
        path = self.path_of(nexus_uuid)
        async with self._lock(nexus_uuid):
            try:
                await asyncio.to_thread(_remove_file, path)
            except OSError as exc:
                raise Unavailable(f"nexus info store: cannot delete {path}: {exc}") from exc

    def _lock(self, nexus_uuid: uuid_mod.UUID) -> asyncio.Lock:
        lock = self._locks.get(nexus_uuid)
        if lock is None:
            lock = self._locks[nexus_uuid] = asyncio.Lock()
        return lock


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _replace_file(path: Path, payload: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.{uuid_mod.uuid4().hex}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
    try:
        try:
            view = memoryview(payload)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    _fsync_directory(path.parent)


def _remove_file(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        return
    _fsync_directory(path.parent)
