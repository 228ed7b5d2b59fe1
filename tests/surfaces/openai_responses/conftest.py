"""The usage tests' `backend` fixture (SQLite, and PostgreSQL when configured), for the
stored-responses tests."""

from tests.usage.conftest import backend

__all__ = ["backend"]
