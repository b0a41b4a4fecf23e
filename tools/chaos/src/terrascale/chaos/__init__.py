"""Fault-test harness: faults under load, then an oracle over the databases (``dev.py chaos``)."""
