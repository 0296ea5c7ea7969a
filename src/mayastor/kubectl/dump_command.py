"""``dump system``: the cluster's specs and states, written to files for a later look.

One file per kind of object (nodes, pools, volumes, replicas, nexuses, specs) and one
per volume under ``rebuild-history/``, each the API's JSON as it came (YAML with
``-o yaml``). Meant for a cluster in trouble, so a part that cannot be read is noted
in ``errors.<ext>`` and the rest is still written; the command then fails (status 1)
after saying what is missing. An API that cannot be reached at all stops it.
"""

from __future__ import annotations

import argparse
import functools
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mayastor.kubectl.failures import CommandFailed
from mayastor.kubectl.output import Output, OutputFormat, serialise
from mayastor.kubectl.tables import volume_id
from mayastor.restclient import RestClient, RestError


class _Dump:
    """Writes one file per part into a folder and keeps count of what failed."""

    def __init__(self, folder: Path, fmt: OutputFormat) -> None:
        self.folder = folder
        self.fmt = fmt
        self.ext = "yaml" if fmt is OutputFormat.YAML else "json"
        self.written: list[str] = []
        self.errors: list[dict[str, Any]] = []

    def save(self, name: str, fetch: Callable[[], Any]) -> Any:
        """Fetch a part and write it to ``<name>.<ext>``; None when the API refused."""
        try:
            data = fetch()
        except RestError as exc:
            self.errors.append(
                {"part": name, "status": exc.status, "kind": exc.kind, "message": exc.message}
            )
            return None
        self.write(name, data)
        return data

    def write(self, name: str, data: Any) -> None:
        path = self.folder / f"{name}.{self.ext}"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(serialise(data, self.fmt), encoding="utf-8")
        self.written.append(str(path.relative_to(self.folder)))


def default_folder(now: datetime | None = None) -> Path:
    """``./mayastor-dump-<UTC time>``, so dumps taken one after another do not mix."""
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    return Path.cwd() / f"mayastor-dump-{stamp}"


def dump_system(client: RestClient, args: argparse.Namespace, out: Output) -> None:
    folder = Path(args.folder).expanduser().absolute() if args.folder else default_folder()
    fmt = OutputFormat.YAML if out.fmt is OutputFormat.YAML else OutputFormat.JSON
    dump = _Dump(folder, fmt)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        dump.save("nodes", client.get_nodes)
        dump.save("pools", client.get_pools)
        volumes = dump.save("volumes", client.all_volumes)
        dump.save("replicas", client.get_replicas)
        dump.save("nexuses", client.get_nexuses)
        dump.save("specs", client.get_specs)
        for volume in volumes or []:
            vid = volume_id(volume)
            dump.save(f"rebuild-history/{vid}", functools.partial(client.get_rebuild_history, vid))
        if dump.errors:
            dump.write("errors", dump.errors)
    except OSError as exc:
        raise CommandFailed(f"cannot write the dump to {folder}: {exc}") from exc
    summary = {"folder": str(folder), "files": dump.written, "errors": dump.errors}
    out.done(summary, f"system dumped to {folder} ({len(dump.written)} files)")
    if dump.errors:
        missing = "; ".join(f"{e['part']}: {e['kind']}: {e['message']}" for e in dump.errors)
        raise CommandFailed(f"the dump in {folder} is incomplete: {missing}")
