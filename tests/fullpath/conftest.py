"""The full-path helpers, under the names these tests import them by (tests/harness.py)."""

from tests.harness import (
    ADMIN_KEY,
    API_KEY,
    OTHER_KEY,
    RESTRICTED_KEY,
    GatewayFactory,
    RunningGateway,
    base_config,
    ledger,
    script,
    sha,
)

__all__ = [
    "ADMIN_KEY",
    "API_KEY",
    "OTHER_KEY",
    "RESTRICTED_KEY",
    "GatewayFactory",
    "RunningGateway",
    "base_config",
    "ledger",
    "script",
    "sha",
]
