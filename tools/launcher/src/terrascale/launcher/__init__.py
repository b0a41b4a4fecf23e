"""Starts the whole TerraScale system on one machine."""
