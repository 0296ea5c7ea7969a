"""Mayastor in Python: replicated block storage for Kubernetes.

The package is layered (DESIGN.md section 4; `pyproject.toml` checks it):
`nvmf` (protocol) -> `bdev` (block devices) -> `lvs` (pools), `nexus` (mirror)
-> `target` (NVMe-oF target) -> `engine` (the io-engine process) -> `cli`.
"""

__version__ = "0.1.0"

from mayastor.compiled import install as _install_compiled

_install_compiled()
