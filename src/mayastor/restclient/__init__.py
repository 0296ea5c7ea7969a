"""A client of the core agent's REST API (v0), for kubectl-mayastor, the cluster launcher and CSI."""
