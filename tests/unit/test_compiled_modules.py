"""The compiled modules are used only while current: the manifest check and the import hook.

The decisions are checked in-process on manifests written here; the loading in a
fresh interpreter per case (an import cannot be undone), against the binaries that
`./run.sh setup` built, through a manifest copy that points at them.
"""

from __future__ import annotations

import ast
import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mayastor import compiled
from mayastor.compiled import (
    COMPILED,
    MANIFEST,
    PURE_ENV,
    Manifest,
    decide,
    ext_suffix,
    source_digest,
    source_path,
)
from mayastor.compiled_build import main, missing_tools

PROBE = "mayastor.nvmf.pdu._reader"


def fresh_manifest(path: Path) -> Manifest:
    """A manifest at `path` that matches the sources (binaries: the real build's, if any)."""
    built = Manifest.read()
    binaries = built.binaries if built is not None else {}
    manifest = Manifest(
        binaries=dict(binaries),
        digests={m: source_digest(source_path(m)) for m in COMPILED},
        suffix=ext_suffix(),
    )
    manifest.write(path)
    return manifest


def with_digest(path: Path, module: str, digest: str) -> None:
    raw = json.loads(path.read_text())
    raw["digests"][module] = digest
    path.write_text(json.dumps(raw))


def require_build() -> None:
    """The loading tests need the binaries; only a machine that cannot build lacks them."""
    why_not = missing_tools()
    if why_not:
        pytest.skip(f"no compiled modules on this machine: {why_not}")
    reason = decide(Manifest.read(), {})
    assert not reason, f"the compiled modules are not current ({reason}): run ./run.sh setup"


def load_probe(manifest: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """In a fresh interpreter: install the hook from `manifest` under `env`, import the
    probe module; prints where it came from and the summary line."""
    code = f"""
import os
from pathlib import Path
from mayastor import compiled
os.environ.pop({PURE_ENV!r}, None)
os.environ.update({env!r})
state = compiled.install(Path({str(manifest)!r}))
import {PROBE} as probe
print(probe.__file__)
print(state.summary)
"""
    base = {k: v for k, v in os.environ.items() if k != PURE_ENV}
    return subprocess.run(
        [sys.executable, "-c", code],
        env={**base, PURE_ENV: "1"},  # the package's own install at import stays out
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )


def test_a_manifest_matching_the_sources_allows_the_compiled_set(tmp_path: Path) -> None:
    assert decide(fresh_manifest(tmp_path / "manifest.json"), {}) == ""


def test_no_manifest_means_pure_python() -> None:
    assert decide(None, {}) == "not built"


def test_the_environment_variable_forces_pure_python(tmp_path: Path) -> None:
    manifest = fresh_manifest(tmp_path / "manifest.json")
    assert decide(manifest, {PURE_ENV: "1"}) == f"{PURE_ENV}=1"
    assert decide(manifest, {PURE_ENV: "0"}) == ""


def test_one_changed_source_makes_the_set_stale_and_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "manifest.json"
    fresh_manifest(path)
    with_digest(path, "mayastor.nvmf.host._queue", "0" * 64)
    reason = decide(Manifest.read(path), {})
    assert str(source_path("mayastor.nvmf.host._queue")) in reason
    assert "changed since it was built" in reason


def test_a_build_for_another_interpreter_is_not_used(tmp_path: Path) -> None:
    path = tmp_path / "manifest.json"
    fresh_manifest(path)
    raw = json.loads(path.read_text())
    raw["suffix"] = ".cpython-39-x86_64-linux-gnu.so"
    path.write_text(json.dumps(raw))
    assert decide(Manifest.read(path), {}).startswith("built for .cpython-39")


def test_a_build_of_another_module_list_is_not_used(tmp_path: Path) -> None:
    path = tmp_path / "manifest.json"
    fresh_manifest(path)
    raw = json.loads(path.read_text())
    del raw["digests"][COMPILED[0]]
    path.write_text(json.dumps(raw))
    assert "another module list" in decide(Manifest.read(path), {})


def test_an_unreadable_manifest_reads_as_none(tmp_path: Path) -> None:
    path = tmp_path / "manifest.json"
    path.write_text("{not json")
    assert Manifest.read(path) is None


def test_a_current_build_is_loaded_from_its_binaries(tmp_path: Path) -> None:
    require_build()
    path = tmp_path / "manifest.json"
    fresh_manifest(path)
    out = load_probe(path, {}).stdout.splitlines()
    assert out[0].endswith(ext_suffix())
    assert out[1] == f"compiled modules: {len(COMPILED)} of {len(COMPILED)}"


def test_a_stale_build_loads_the_sources_with_one_warning_line(tmp_path: Path) -> None:
    require_build()
    path = tmp_path / "manifest.json"
    fresh_manifest(path)
    with_digest(path, "mayastor.nexus._fan_out", "0" * 64)
    done = load_probe(path, {})
    out = done.stdout.splitlines()
    assert out[0] == str(source_path(PROBE))
    assert out[1].startswith(f"compiled modules: 0 of {len(COMPILED)} (")
    warning = done.stderr.splitlines()
    assert len(warning) == 1
    assert str(source_path("mayastor.nexus._fan_out")) in warning[0]


def test_the_environment_variable_loads_the_sources_silently(tmp_path: Path) -> None:
    require_build()
    path = tmp_path / "manifest.json"
    fresh_manifest(path)
    done = load_probe(path, {PURE_ENV: "1"})
    out = done.stdout.splitlines()
    assert out[0] == str(source_path(PROBE))
    assert out[1] == f"compiled modules: 0 of {len(COMPILED)} ({PURE_ENV}=1)"
    assert done.stderr == ""


def test_the_build_step_does_nothing_when_up_to_date() -> None:
    require_build()
    before = MANIFEST.stat().st_mtime_ns
    done = subprocess.run(
        [sys.executable, "-m", "mayastor.compiled_build"],
        env={**os.environ, PURE_ENV: "1"},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert done.stdout == f"mayastor: compiled modules up to date ({len(COMPILED)} modules)\n"
    assert MANIFEST.stat().st_mtime_ns == before


def test_this_process_reports_what_it_runs() -> None:
    files = [str(importlib.import_module(m).__file__) for m in COMPILED]
    native = [f for f in files if f.endswith(ext_suffix())]
    assert len(compiled.compiled_modules().modules) == len(native)


def test_without_a_c_compiler_the_build_step_says_so_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CC", "/nonexistent/cc")
    main(tmp_path / "no-manifest.json")
    assert capsys.readouterr().out == (
        "mayastor: compiled modules not built: no C compiler (/nonexistent/cc); "
        "running pure Python\n"
    )


def test_no_compiled_function_binds_one_name_to_two_exception_types() -> None:
    """mypyc gives a name bound by several `except ... as NAME` clauses of one function
    the first clause's type, so a later clause's exception fails its type check at run
    time (a TypeError in place of the error handling): each clause needs its own name."""
    offenders = []
    for module in COMPILED:
        tree = ast.parse(source_path(module).read_text())
        for function in ast.walk(tree):
            if not isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            bound: dict[str, set[str]] = {}
            for node in ast.walk(function):
                if isinstance(node, ast.ExceptHandler) and node.name and node.type:
                    bound.setdefault(node.name, set()).add(ast.unparse(node.type))
            offenders += [
                f"{module}.{function.name}: {name} is {' and '.join(sorted(types))}"
                for name, types in bound.items()
                if len(types) > 1
            ]
    assert not offenders, offenders


def declared_attributes(cls: ast.ClassDef) -> set[str]:
    """The attributes a class declares with a type: in its body, or as ``self.x: T``."""
    names = {
        node.target.id
        for node in cls.body
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
    }
    for node in ast.walk(cls):
        if (
            isinstance(node, ast.AnnAssign)
            and isinstance(node.target, ast.Attribute)
            and isinstance(node.target.value, ast.Name)
            and node.target.value.id == "self"
        ):
            names.add(node.target.attr)
    return names


def test_no_compiled_class_declares_again_an_attribute_of_a_compiled_base() -> None:
    """mypyc visits an attribute declared both in a compiled class and in a compiled
    base once per declaration when the garbage collector traverses an object; counted
    twice, the object looks referenced from outside, and a cycle through it (a queue
    pair and the tables of its bound methods) is never freed: declare it once."""
    classes: dict[str, ast.ClassDef] = {}
    for module in COMPILED:
        tree = ast.parse(source_path(module).read_text())
        classes.update((c.name, c) for c in ast.walk(tree) if isinstance(c, ast.ClassDef))

    def ancestors(cls: ast.ClassDef) -> list[ast.ClassDef]:
        found = []
        for base in cls.bases:
            if isinstance(base, ast.Name) and base.id in classes:
                found.append(classes[base.id])
                found += ancestors(classes[base.id])
        return found

    offenders = [
        f"{cls.name}.{name} (declared in {base.name} too)"
        for cls in classes.values()
        for base in ancestors(cls)
        for name in sorted(declared_attributes(cls) & declared_attributes(base))
    ]
    assert not offenders, offenders


def test_no_compiled_module_raises_with_a_from_clause() -> None:
    """mypyc drops the ``from`` of ``raise X from exc`` (and of ``from None``): the error
    loses its cause, which operators read in tracebacks and tests check. The compiled
    modules set it with `mayastor.errors.caused_by` instead."""
    offenders = [
        f"{module}:{node.lineno}: {ast.unparse(node)}"
        for module in COMPILED
        for node in ast.walk(ast.parse(source_path(module).read_text()))
        if isinstance(node, ast.Raise) and node.cause is not None
    ]
    assert not offenders, offenders
