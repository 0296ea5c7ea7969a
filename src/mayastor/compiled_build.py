"""The build step of the compiled modules: ``python -m mayastor.compiled_build``.

Compiles the modules of `mayastor.compiled.COMPILED` with mypyc into
`mayastor/_compiled/` and writes the manifest the import hook checks. Idempotent: a
manifest that matches the sources, the module list and this interpreter means nothing
to do. Prints one line saying what it did; when mypyc or a C compiler is missing or
the build fails, one line saying why (the full log is kept in the build folder), and
the exit status is still 0: the product then runs in pure Python.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

from mayastor.compiled import (
    BUILD_DIR,
    COMPILED,
    MANIFEST,
    PURE_ENV,
    Manifest,
    decide,
    ext_suffix,
    source_digest,
    source_path,
)

LOG = BUILD_DIR.parent / "_compiled.log"
"""The last build's full output (beside the build folder, so a swap keeps it)."""

_SETUP = """
import sys
from mypyc.build import mypycify
from setuptools import setup

out, temp, *sources = sys.argv[1:]
setup(
    name="mayastor-compiled",
    ext_modules=mypycify(
        ["--no-warn-unused-configs", *sources],
        opt_level="3",
        group_name="mayastor_compiled",
        target_dir=temp + "/c",
    ),
    script_args=["build_ext", "--build-lib", out, "--build-temp", temp + "/obj", "-j", "2"],
)
"""


def missing_tools() -> str:
    """Why a build cannot start ("" when it can): mypyc, a C compiler, Python.h."""
    try:
        import mypyc  # noqa: F401
    except ImportError:
        return "mypyc is not installed (it comes with mypy, in the test extras)"
    compiler = (os.environ.get("CC") or str(sysconfig.get_config_var("CC") or "cc")).split()[0]
    if shutil.which(compiler) is None:
        return f"no C compiler ({compiler})"
    include = Path(sysconfig.get_paths()["include"]) / "Python.h"
    if not include.exists():
        return f"no Python headers ({include})"
    return ""


def project_root() -> Path:
    """Where mypy finds its configuration (pyproject.toml) for an editable install."""
    root = BUILD_DIR.parent.parent.parent
    return root if (root / "pyproject.toml").exists() else Path.cwd()


def build() -> str:
    """Compile `COMPILED` into a fresh folder, then swap it in; the one line to print."""
    sources = [str(source_path(module)) for module in COMPILED]
    digests = {module: source_digest(source_path(module)) for module in COMPILED}
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="_compiled-", dir=BUILD_DIR.parent) as tmp:
        out = Path(tmp) / "out"
        env = dict(os.environ, MYPYPATH=str(BUILD_DIR.parent.parent))
        with LOG.open("w") as log:
            done = subprocess.run(
                [sys.executable, "-c", _SETUP, str(out), str(Path(tmp) / "temp"), *sources],
                cwd=project_root(),
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                check=False,
            )
        if done.returncode != 0:
            return f"failed ({_last_line(LOG)}; see {LOG}): running pure Python"
        found: dict[str, Path] = {}
        for path in out.rglob("*" + ext_suffix()):
            relative = path.relative_to(out)
            name = ".".join((*relative.parts[:-1], relative.name.removesuffix(ext_suffix())))
            found[name] = path
        if not set(COMPILED) <= set(found):
            return f"failed (no binary for {sorted(set(COMPILED) - set(found))}): pure Python"
        Manifest(binaries=found, digests=digests, suffix=ext_suffix()).write(out / MANIFEST.name)
        broken = _import_error(out / MANIFEST.name)
        if broken:
            return f"failed (importing the binaries: {broken}; see {LOG}): running pure Python"
        old = Path(tmp) / "old"
        if BUILD_DIR.exists():
            BUILD_DIR.rename(old)
        out.rename(BUILD_DIR)
    seconds = time.monotonic() - started
    return f"compiled {len(COMPILED)} modules with mypyc in {seconds:.0f} s"


def _import_error(manifest: Path) -> str:
    """The last line of what importing every built module raised ("" when none did): a
    binary that compiles but fails at import (mypyc has such limits) is not installed."""
    code = (
        "import importlib, os, sys\n"
        "from pathlib import Path\n"
        "from mayastor import compiled\n"
        f"os.environ.pop({PURE_ENV!r})\n"
        "state = compiled.install(Path(sys.argv[1]))\n"
        "assert not state.reason, state.reason\n"
        "for name in compiled.COMPILED:\n"
        "    assert importlib.import_module(name).__file__.startswith(sys.argv[2]), name\n"
    )
    with LOG.open("a") as log:
        done = subprocess.run(
            [sys.executable, "-c", code, str(manifest), str(manifest.parent)],
            env=dict(os.environ, **{PURE_ENV: "1"}),
            stdout=log,
            stderr=subprocess.STDOUT,
            check=False,
        )
    return _last_line(LOG) if done.returncode != 0 else ""


def discard(manifest: Path) -> None:
    """Forget a build that cannot be used (its manifest), so that pure Python runs
    without a warning in every process: the build step's line said why."""
    manifest.unlink(missing_ok=True)


def _last_line(path: Path) -> str:
    lines = [line.strip() for line in path.read_text(errors="replace").splitlines()]
    errors = [line for line in lines if "error" in line.lower()]
    return (errors or lines or ["no output"])[-1][:200]


def main(manifest: Path = MANIFEST) -> None:
    """Build when needed and print one line; never fail the caller's setup."""
    current = decide(Manifest.read(manifest), {})
    if not current:
        print(f"mayastor: compiled modules up to date ({len(COMPILED)} modules)")
        return
    why_not = missing_tools()
    if why_not:
        discard(manifest)
        print(f"mayastor: compiled modules not built: {why_not}; running pure Python")
        return
    try:
        done = build()
    except OSError as exc:
        done = f"failed ({exc}): running pure Python"
    if done.startswith("failed"):
        discard(manifest)
    print(f"mayastor: {done}")


if __name__ == "__main__":
    main()
