"""weedpy: a SeaweedFS-compatible distributed blob store (master + volume servers)."""

__version__ = "0.1.0"

__all__ = ["__version__"]
