"""Fixtures shared by the whole test session."""

from tests.s3_server import s3_store

__all__ = ["s3_store"]
