"""The control plane's core agent (DESIGN.md section 11).

Desired state (specs of nodes, pools, replicas, volumes and nexuses) lives in the
cluster store; actual state is polled from the io-engines through their gRPC API and
never persisted; operations and reconcilers move the one towards the other; a REST
API (`/v0`, shaped after Mayastor's) and a gRPC API for the io-engines (registration,
nexus info) are how the rest of the world reaches it. Nothing here imports the data
plane: io-engines are reached only through `mayastor.api`.
"""
