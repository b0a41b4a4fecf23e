"""Capacity model: the global design projected from the figures measured in this repository."""
