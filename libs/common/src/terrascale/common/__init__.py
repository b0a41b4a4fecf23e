"""Shared runtime for TerraScale services.

Every service builds on the same pieces so that a reader who knows one service knows all:
settings, logging, tracing, database sessions, the Redis cache, ids, RFC 9457 errors and health.
"""
