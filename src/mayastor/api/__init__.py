"""The io-engine's gRPC API (package `mayastor.v1`, after Mayastor's v1 protos).

`mayastor.api.v1` holds the .proto files and the modules generated from them
(`python -m mayastor.api._compile`). This package imports nothing else of ours: the
engine serves it and the CLI calls it.
"""
