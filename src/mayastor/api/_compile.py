"""Compile the gRPC APIs into Python modules: the io-engine's (`mayastor/api/v1/*.proto`,
package ``mayastor.v1``) and the Container Storage Interface (`mayastor/api/csi/v1/
csi.proto`, package ``csi.v1``).

The generated `*_pb2.py`, `*_pb2_grpc.py` and `.pyi` stubs are committed, so installing
the package needs no protoc; tests regenerate them into a temporary folder and fail
when they differ from the committed ones. Run after editing a .proto:

    .venv/bin/python -m mayastor.api._compile
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[2]
PROTO_DIR = SRC / "mayastor" / "api" / "v1"
CSI_PROTO_DIR = SRC / "mayastor" / "api" / "csi" / "v1"
PROTO_DIRS = (PROTO_DIR, CSI_PROTO_DIR)
"""Every folder of .proto files; each compiles on its own into the same place."""


def compile_protos(out_root: Path, proto_dir: Path = PROTO_DIR) -> list[Path]:
    """Generate the modules for every .proto of `proto_dir` under `out_root`.

    Args:
        out_root: where the package tree (``mayastor/api/...``) is written.
        proto_dir: one of `PROTO_DIRS` (the io-engine API by default).

    Returns:
        the generated files (in the folder of `out_root` that mirrors `proto_dir`).

    Raises:
        RuntimeError: protoc reported an error.
    """
    import grpc_tools  # test-time dependency only
    from grpc_tools import protoc

    include = Path(grpc_tools.__file__).parent / "_proto"
    bindir = Path(sys.executable).parent
    protos = sorted(str(p.relative_to(SRC)) for p in proto_dir.glob("*.proto"))
    out = out_root / proto_dir.relative_to(SRC)
    out.mkdir(parents=True, exist_ok=True)
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
    return sorted(p for p in out.iterdir() if p.suffix in (".py", ".pyi"))


def main() -> None:
    import tempfile

    for proto_dir in PROTO_DIRS:
        with tempfile.TemporaryDirectory() as tmp:
            for path in compile_protos(Path(tmp), proto_dir):
                shutil.copyfile(path, proto_dir / path.name)
                print(f"wrote {proto_dir / path.name}")


if __name__ == "__main__":
    main()
