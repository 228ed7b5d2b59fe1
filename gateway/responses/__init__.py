"""Stored Responses API responses (`responses.store`), kept in the usage database."""
