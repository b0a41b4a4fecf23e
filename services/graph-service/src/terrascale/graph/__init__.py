"""TerraScale Graph Service: follow edges in both directions, exact counts, follow events."""

__version__ = "0.1.0"
