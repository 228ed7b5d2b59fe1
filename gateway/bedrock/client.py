"""The Bedrock client of a running gateway: long-lived aiobotocore clients, tuned.

The protocol handlers depend on (`BedrockClient`), its errors and the calls themselves
are in `gateway.bedrock.calls`, re-exported here; this module owns the clients' lives.

One client per region (and per team with an IAM role to assume, `gateway.bedrock.roles`)
is opened in the app lifespan and shared by every request. Creating a client per
request costs a TLS handshake, a credential lookup and several milliseconds of
botocore model loading, and leaks connections under load.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from collections.abc import Iterable, Mapping
from typing import Any

import aiobotocore
import botocore
from aiobotocore.config import AioConfig
from aiobotocore.session import AioSession

import gateway
from gateway.bedrock.calls import (
    _TRANSPORT_ERRORS,
    BedrockClient,
    BedrockError,
    BedrockStream,
    InvokeResult,
    StaticCredentials,
    _bedrock_error,
    _Calls,
)
from gateway.bedrock.discovery import Listing
from gateway.bedrock.roles import RoleCredentials, role_session
from gateway.config import BedrockConfig, TeamConfig

__all__ = [
    "AioBedrockClient",
    "BedrockClient",
    "BedrockError",
    "BedrockStream",
    "InvokeResult",
    "StaticCredentials",
    "aio_config",
]

# How long an idle pooled connection is kept for reuse. Bedrock's front end closes idle
# keep-alive connections after about 20 s; closing ours first means a reused connection is
# almost never one the server is closing at that very moment (which costs a retry).
KEEPALIVE_S = 12.0


def _user_agent() -> str:
    """`bedrock-gateway/<v> aiobotocore/<v> botocore/<v> Python/<v>`: who called, in what."""
    python = ".".join(str(part) for part in sys.version_info[:3])
    return (
        f"bedrock-gateway/{gateway.__version__} aiobotocore/{aiobotocore.__version__} "
        f"botocore/{botocore.__version__} Python/{python}"
    )


def aio_config(config: BedrockConfig) -> AioConfig:
    """aiobotocore's aiohttp session, tuned from `bedrock.*`: pool, keep-alive, timeouts."""
    return AioConfig(
        # One pool per client (so per region), shared by every request of this worker.
        max_pool_connections=config.max_connections,
        connect_timeout=config.connect_timeout_s,
        # The longest silence while reading an answer, not the longest answer: a stream
        # that keeps sending is never cut.
        read_timeout=config.read_timeout_s,
        connector_args={
            "keepalive_timeout": KEEPALIVE_S,
            # Bedrock endpoints resolve to a few addresses that rarely change; the resolver
            # cache keeps a DNS lookup off every new connection without pinning one forever.
            "use_dns_cache": True,
            "ttl_dns_cache": 60,
        },
        # One attempt per call: `gateway.bedrock.retries` retries (bounded, jittered, before the
        # first byte only) and falls back; botocore's own backoff would stack on top of
        # it and cannot see fallbacks. The mode still selects botocore's behaviour.
        retries={"mode": config.retries.mode, "total_max_attempts": 1},
        # SO_KEEPALIVE on every connection: a stream that waits minutes for a long answer
        # notices a peer that vanished (NAT, load balancer) instead of hanging until the
        # read timeout.
        tcp_keepalive=True,
        # botocore's client-side check of every request against the service model costs
        # ~15 us for one short message and ~150 us for a 20-turn chat, on every call. Our
        # requests are built by `gateway.translate` from validated input, and Bedrock
        # validates again on its side: a mistake of ours still comes back as Bedrock's
        # ValidationException (a 400 with Bedrock's message) instead of a client-side
        # ParamValidationError, which nothing here catches (it would be a 500).
        parameter_validation=False,
        # A fixed User-Agent, built once. botocore otherwise rebuilds and sanitises its
        # default one twice per call (~10% of a Converse call's client CPU in profiles),
        # and this one tells an operator reading CloudTrail that the gateway called.
        user_agent=_user_agent(),
    )


class AioBedrockClient(_Calls):
    """`BedrockClient` over one long-lived aiobotocore client per region (and team role).

    Use as `async with AioBedrockClient(config, regions=...) as client:` in the lifespan.
    `credentials` is for the built-in demo only; real deployments use the AWS default chain.
    `roles` (team -> its config with a `role_arn`) opens one more client per region for each
    such team, signed with the role's credentials: `for_team(team)` calls through them.
    """

    def __init__(
        self,
        config: BedrockConfig,
        *,
        regions: Iterable[str | None] = (),
        credentials: StaticCredentials | None = None,
        roles: Mapping[str, TeamConfig] | None = None,
    ) -> None:
        self._config = config
        self._wanted_regions = {config.region, *regions}
        self._credentials = credentials
        self._roles = {team: role for team, role in (roles or {}).items() if role.role_arn}
        self._clients: dict[tuple[str | None, str | None], Any] = {}
        self._control: dict[str | None, Any] = {}
        self._stack = contextlib.AsyncExitStack()
        self._default_region: str | None = config.region

    async def __aenter__(self) -> AioBedrockClient:
        # Session() reads ~/.aws/config and credential files synchronously: keep that off the
        # event loop. Credential refresh afterwards is aiobotocore's own async code.
        session = await asyncio.to_thread(self._new_session)
        self._default_region = self._config.region or session.get_config_variable("region")
        regions = sorted({r or self._default_region or "" for r in self._wanted_regions})
        try:
            await self._open(session, regions, team=None)
            if self._config.discover.enabled:
                # Small answers, retried by botocore (nothing else retries them), never
                # waited on as long as a model's answer.
                listing = aio_config(self._config).merge(
                    AioConfig(read_timeout=20, retries={"mode": "standard", "max_attempts": 3})
                )
                # The control plane (`bedrock`, not `bedrock-runtime`), at its endpoint as
                # any boto3 program finds it (AWS_ENDPOINT_URL_BEDROCK honoured).
                for region in regions:
                    self._control[region or None] = await self._stack.enter_async_context(
                        session.create_client("bedrock", region_name=region or None, config=listing)
                    )
            if self._roles:
                sts = await self._stack.enter_async_context(
                    session.create_client(
                        "sts",
                        region_name=self._default_region,
                        endpoint_url=self._config.sts_endpoint_url,
                        # Unlike Bedrock calls (our own retry loop), a credential refresh
                        # has nobody else to retry it: botocore's standard retries do.
                        config=aio_config(self._config).merge(
                            AioConfig(retries={"mode": "standard", "max_attempts": 3})
                        ),
                    )
                )
                for team, role in sorted(self._roles.items()):
                    fetcher = RoleCredentials(team, role, sts)
                    team_session = await asyncio.to_thread(role_session, session, fetcher)
                    await self._open(team_session, regions, team=team)
        except BaseException:
            await self._stack.aclose()
            raise
        return self

    async def _open(self, session: Any, regions: list[str], *, team: str | None) -> None:
        tuned = aio_config(self._config)
        for region in regions:
            client = await self._stack.enter_async_context(
                session.create_client(
                    "bedrock-runtime",
                    region_name=region or None,
                    endpoint_url=self._config.endpoint_urls.get(region)
                    or self._config.endpoint_url,
                    config=tuned,
                )
            )
            self._clients[(region or None, team)] = client

    def _new_session(self) -> Any:
        # botocore reads AWS_DEFAULT_REGION but not AWS_REGION, which most AWS SDKs (and
        # EKS, ECS and Lambda) set; honour both so "region from the AWS environment" holds.
        region = (
            self._config.region
            or os.environ.get("AWS_REGION")
            or os.environ.get("AWS_DEFAULT_REGION")
            or None
        )
        session = AioSession()
        if region:
            session.set_config_variable("region", region)
        if self._credentials is not None:
            session.set_credentials(self._credentials.access_key, self._credentials.secret_key)
        return session

    async def __aexit__(self, *exc_info: object) -> None:
        await self._stack.aclose()
        self._clients.clear()

    async def list_region(self, region: str) -> Listing:
        """ListFoundationModels and ListInferenceProfiles (every page) of one region."""
        control = self._control.get(region or None)
        if control is None:
            raise BedrockError("ConfigurationError", f"no control-plane client for {region!r}")
        try:
            models = (await control.list_foundation_models()).get("modelSummaries", [])
            profiles: list[dict[str, Any]] = []
            for kind in ("SYSTEM_DEFINED", "APPLICATION"):
                paginator = control.get_paginator("list_inference_profiles")
                async for page in paginator.paginate(typeEquals=kind):
                    profiles.extend(page.get("inferenceProfileSummaries", []))
        except _TRANSPORT_ERRORS as exc:
            raise _bedrock_error(exc) from exc
        return Listing(region, models, profiles)

    def for_team(self, team: str) -> BedrockClient:
        """The calls of `team`, signed with its role (opened in `__aenter__`)."""
        return _TeamCalls(self, team)

    @property
    def default_region(self) -> str | None:
        return self._default_region

    def _client(self, region: str | None, team: str | None = None) -> Any:
        key = region or self._default_region
        try:
            return self._clients[(key, team)]
        except KeyError:
            raise BedrockError(
                "ConfigurationError", f"no Bedrock client was opened for region {key!r}"
            ) from None


class _TeamCalls(_Calls):
    """The calls of one team with an IAM role: its own clients, one per region."""

    def __init__(self, parent: AioBedrockClient, team: str) -> None:
        self._parent = parent
        self._team = team

    def _client(self, region: str | None) -> Any:
        return self._parent._client(region, self._team)
