"""A Mayastor cluster on one machine: its processes, and `mayastor-cluster up|down`."""
