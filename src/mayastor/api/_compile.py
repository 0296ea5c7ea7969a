"""Compile the io-engine API (`mayastor/api/v1/*.proto`) into Python modules.

The generated `*_pb2.py`, `*_pb2_grpc.py` and `.pyi` stubs are committed, so installing
the package needs no protoc; a test regenerates them into a temporary folder and fails
when they differ from the committed ones. Run after editing a .proto:

    .venv/bin/python -m mayastor.api._compile
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[2]
PROTO_DIR = SRC / "mayastor" / "api" / "v1"


def compile_protos(out_root: Path) -> list[Path]:
    """Generate the modules for every .proto under `out_root/mayastor/api/v1`.

    Returns:
        the generated files.

    Raises:
        RuntimeError: protoc reported an error.
    """
    import grpc_tools  # test-time dependency only
    from grpc_tools import protoc

    include = Path(grpc_tools.__file__).parent / "_proto"
    bindir = Path(sys.executable).parent
    protos = sorted(str(p.relative_to(SRC)) for p in PROTO_DIR.glob("*.proto"))
    (out_root / "mayastor" / "api" / "v1").mkdir(parents=True, exist_ok=True)
    argv = [
        "protoc",
        f"-I{SRC}",
        f"-I{include}",
        f"--python_out={out_root}",
        f"--grpc_python_out={out_root}",
        f"--plugin=protoc-gen-mypy={bindir / 'protoc-gen-mypy'}",
        f"--plugin=protoc-gen-mypy_grpc={bindir / 'protoc-gen-mypy_grpc'}",
        f"--mypy_out=quiet:{out_root}",
        f"--mypy_grpc_out=quiet:{out_root}",
        *protos,
    ]
    if protoc.main(argv) != 0:
        raise RuntimeError(f"protoc failed: {' '.join(argv)}")
    out = out_root / "mayastor" / "api" / "v1"
    return sorted(p for p in out.iterdir() if p.suffix in (".py", ".pyi"))


def main() -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        for path in compile_protos(Path(tmp)):
            shutil.copyfile(path, PROTO_DIR / path.name)
            print(f"wrote {PROTO_DIR / path.name}")


if __name__ == "__main__":
    main()
