"""Which modules run compiled (mypyc, ahead of time) and the import hook that loads them.

`python -m mayastor.compiled_build` (run by `./run.sh setup`) compiles the hot
data-path modules named in `COMPILED` into `_compiled/` beside this file and writes
`_compiled/manifest.json`: for each module its binary and the SHA-256 of the source
it was built from. When the package is imported, `install` puts a finder first on
`sys.meta_path` that loads those binaries instead of the sources, but only while the
whole set is current: the compiled modules call each other's native code directly,
so one edited source (a stale binary) sends the whole set back to pure Python, with
one warning line naming the file. ``MAYASTOR_PURE_PYTHON=1`` forces pure Python; no
build, another interpreter or an unreadable manifest means pure Python silently.

`compiled_modules` reports what is in use (the io-engine logs it at start).
"""

from __future__ import annotations

import hashlib
import importlib.abc
import importlib.machinery
import importlib.util
import json
import os
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

PURE_ENV = "MAYASTOR_PURE_PYTHON"
"""Set to 1 to run every module from its source even when compiled ones are current."""

PACKAGE_DIR = Path(__file__).resolve().parent
BUILD_DIR = PACKAGE_DIR / "_compiled"
MANIFEST = BUILD_DIR / "manifest.json"
MANIFEST_FORMAT = 1

COMPILED: tuple[str, ...] = (
    "mayastor.bdev._io_request",
    "mayastor.bdev._io_uring",
    "mayastor.bdev._uring_transfer",
    "mayastor.nexus._fan_out",
    "mayastor.nexus._range_lock",
    "mayastor.nexus._segment_map",
    "mayastor.nvmf.host._connection",
    "mayastor.nvmf.host._queue",
    "mayastor.nvmf.pdu._errors",
    "mayastor.nvmf.pdu._reader",
    "mayastor.nvmf.pdu._writer",
    "mayastor.target._connection",
    "mayastor.target._io_commands",
    "mayastor.target._queue_pair",
    "mayastor.target._transfer",
)
"""The modules the build compiles: where profiles show the data path's CPU going and
mypyc pays (see docs of the build). Each must stay statically typed, with no class
patched or subclassed from interpreted code, and no attribute declared both in a class
and in a compiled base (a mixin): mypyc's garbage-collector traversal then visits it
twice, and a cycle through the object (the queue pair and the tables of its bound
methods) is never freed (`tests/unit/test_compiled_modules.py` checks it)."""


def source_path(module: str) -> Path:
    """The source file of one of our modules (``mayastor.a.b`` -> ``<package>/a/b.py``)."""
    parts = module.split(".")[1:]
    return PACKAGE_DIR.joinpath(*parts[:-1], parts[-1] + ".py")


def source_digest(path: Path) -> str:
    """The SHA-256 (hex) of a source file's bytes: what a binary was built from."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def ext_suffix() -> str:
    """The file name ending of extension modules for this interpreter."""
    return str(sysconfig.get_config_var("EXT_SUFFIX"))


@dataclass(frozen=True)
class CompiledState:
    """What runs compiled in this process, and why the rest does not.

    `modules`: the modules loaded from binaries (empty when pure); `total`: how many
    the build compiles (`COMPILED`); `reason`: why pure Python runs, or "" when the
    compiled set is in use.
    """

    modules: tuple[str, ...]
    total: int
    reason: str

    @property
    def summary(self) -> str:
        """One line for a log: "compiled modules: N of M" and why not, when not."""
        line = f"compiled modules: {len(self.modules)} of {self.total}"
        return f"{line} ({self.reason})" if self.reason else line


@dataclass(frozen=True)
class Manifest:
    """A build's record: binaries by module name, and the digest each was built from."""

    binaries: dict[str, Path]
    digests: dict[str, str]
    suffix: str

    @classmethod
    def read(cls, path: Path = MANIFEST) -> Manifest | None:
        """The manifest at `path`, or None when there is none or it cannot be read."""
        try:
            raw = json.loads(path.read_text())
            if raw.get("format") != MANIFEST_FORMAT:
                return None
            base = path.parent
            return cls(
                binaries={str(k): base / str(v) for k, v in raw["binaries"].items()},
                digests={str(k): str(v) for k, v in raw["digests"].items()},
                suffix=str(raw["suffix"]),
            )
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return None

    def write(self, path: Path = MANIFEST) -> None:
        """Store the manifest (binaries inside its folder relative to it)."""
        base = path.parent
        raw = {
            "format": MANIFEST_FORMAT,
            "suffix": self.suffix,
            "binaries": {
                k: str(v.relative_to(base) if v.is_relative_to(base) else v)
                for k, v in sorted(self.binaries.items())
            },
            "digests": dict(sorted(self.digests.items())),
        }
        path.write_text(json.dumps(raw, indent=1) + "\n")

    def first_stale(self) -> str | None:
        """The first module whose source changed since the build (or is gone), else None."""
        for module, digest in sorted(self.digests.items()):
            try:
                current = source_digest(source_path(module))
            except OSError:
                return module
            if current != digest:
                return module
        return None


class CompiledFinder(importlib.abc.MetaPathFinder):
    """Finds the compiled binaries of a current build (modules and mypyc's shared
    library) ahead of the sources; defers to the normal finders for anything else."""

    def __init__(self, binaries: dict[str, Path]) -> None:
        self.binaries = binaries

    def find_spec(
        self,
        fullname: str,
        path: object = None,
        target: ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        binary = self.binaries.get(fullname)
        if binary is None:
            return None
        loader = importlib.machinery.ExtensionFileLoader(fullname, str(binary))
        return importlib.util.spec_from_file_location(fullname, binary, loader=loader)


_state = CompiledState(modules=(), total=len(COMPILED), reason="not installed")
_finder: CompiledFinder | None = None


def decide(manifest: Manifest | None, environ: dict[str, str] | os._Environ[str]) -> str:
    """Why the compiled set must not be used ("" when it may): forced pure, no build,
    a build for another interpreter or another module list, or a stale binary."""
    if environ.get(PURE_ENV, "") not in ("", "0"):
        return f"{PURE_ENV}={environ[PURE_ENV]}"
    if manifest is None:
        return "not built"
    if manifest.suffix != ext_suffix():
        return f"built for {manifest.suffix}, not {ext_suffix()}"
    if set(manifest.digests) != set(COMPILED):
        return "built for another module list; run ./run.sh setup"
    stale = manifest.first_stale()
    if stale is not None:
        return f"{source_path(stale)} changed since it was built; run ./run.sh setup"
    return ""


def install(manifest_path: Path = MANIFEST) -> CompiledState:
    """Put the finder of a current build first on `sys.meta_path` (once); else note why
    pure Python runs, warning on stderr when a binary is stale."""
    global _finder, _state
    if _finder is not None:
        return compiled_modules()
    manifest = Manifest.read(manifest_path)
    reason = decide(manifest, os.environ)
    if reason or manifest is None:
        if "changed since it was built" in reason:
            sys.stderr.write(f"mayastor: running pure Python: {reason}\n")
        _state = CompiledState(modules=(), total=len(COMPILED), reason=reason)
        return _state
    _finder = CompiledFinder(manifest.binaries)
    sys.meta_path.insert(0, _finder)
    return compiled_modules()


def compiled_modules() -> CompiledState:
    """What runs compiled in this process: every module of `COMPILED` once the finder
    of a current build is installed (each loads from its binary when first imported),
    else none, and why."""
    if _finder is None:
        return _state
    return CompiledState(modules=COMPILED, total=len(COMPILED), reason="")
