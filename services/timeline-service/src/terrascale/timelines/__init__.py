"""TerraScale Timeline Service: home timelines with fan-out on write, celebrity posts merged at
read time, rebuilt when missing."""

__version__ = "0.1.0"
