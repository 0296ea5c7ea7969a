"""gRPC servicers of the io-engine: thin adapters from the API to the `Registry`."""
