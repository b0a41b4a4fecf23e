"""Two regions on one machine: the replicator, the command that starts both, the figures."""
