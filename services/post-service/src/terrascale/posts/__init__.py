"""TerraScale Post Service: posts with their mentions, hashtags and links, and user timelines."""

__version__ = "0.1.0"
