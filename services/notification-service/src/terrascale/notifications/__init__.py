"""TerraScale Notification Service: follows, mentions and replies, read state, and live delivery
over Server-Sent Events."""

__version__ = "0.1.0"
