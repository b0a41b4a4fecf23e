"""TerraScale User Service: accounts and profiles, served from PostgreSQL through a Redis cache."""

__version__ = "0.1.0"
