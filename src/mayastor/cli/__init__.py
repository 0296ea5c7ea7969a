"""Command-line clients of the io-engine; they talk to it only through `mayastor.api`."""
