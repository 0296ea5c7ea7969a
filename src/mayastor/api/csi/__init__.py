"""The Container Storage Interface (package `csi.v1`), the API Kubernetes calls plugins by.

`mayastor.api.csi.v1` holds `csi.proto` (written from the CSI specification, v1.9) and
the modules generated from it (`python -m mayastor.api._compile`). Like the io-engine's
API beside it, it imports nothing else of ours: `mayastor.csi` serves it, tests call it.
"""
