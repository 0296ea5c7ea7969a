"""kubectl-mayastor: the operator's command line over the REST API."""
