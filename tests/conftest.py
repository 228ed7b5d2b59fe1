"""Shared fixtures: environment isolation, `--update-golden`, the emulator and gateways.

Helpers live in plain modules (tests/harness.py for gateways served in-process,
tests/processes.py for real `serve` processes); the fixtures built on them live here so
that every test folder sees the same ones.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from gateway.app import create_app
from gateway.config import GatewayConfig
from gateway.emulator.app import create_emulator_app
from tests.harness import Credentials, GatewayFactory, RunningGateway, base_config
from tests.processes import GatewayProcess, GatewayProcessFactory
from tests.servers import ServerThread, serve


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--update-golden",
        action="store_true",
        default=False,
        help="rewrite tests/golden/ expectations from the current code (review the diff!)",
    )


@pytest.fixture
def update_golden(request: pytest.FixtureRequest) -> bool:
    return bool(request.config.getoption("--update-golden"))


@pytest.fixture(autouse=True)
def _restore_environ() -> Iterator[None]:
    """Tests may set variables freely; each starts from the same environment."""
    saved = dict(os.environ)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


@pytest.fixture(scope="session")
def emulator() -> Iterator[ServerThread]:
    with serve(create_emulator_app()) as server:
        yield server


@pytest.fixture
def start_gateway(emulator: ServerThread, tmp_path: Path) -> Iterator[GatewayFactory]:
    """Start a gateway with `base_config` plus overrides; stopped (and flushed) at teardown."""
    running: list[RunningGateway] = []

    def start(**overrides: Any) -> RunningGateway:
        config = GatewayConfig.model_validate(base_config(emulator.url, tmp_path, **overrides))
        app = create_app(config, registry=CollectorRegistry(), credentials=Credentials())
        server = ServerThread(app)
        gateway = RunningGateway(server=server, app=app, config=config)
        running.append(gateway)
        return gateway

    yield start
    for gateway in running:
        gateway.server.stop()


@pytest.fixture
def gateway(start_gateway: GatewayFactory) -> RunningGateway:
    return start_gateway()


@pytest.fixture
def gateway_process() -> Iterator[GatewayProcessFactory]:
    """Start `serve` processes (`GatewayProcess.start` arguments); killed at teardown."""
    started: list[GatewayProcess] = []

    def start(config: dict[str, Any], directory: Path, **kwargs: Any) -> GatewayProcess:
        running = GatewayProcess.start(config, directory, **kwargs)
        started.append(running)
        running.wait_ready()
        return running

    yield start
    for running in started:
        running.kill()
