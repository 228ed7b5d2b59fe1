"""Credentials of a team's IAM role: STS AssumeRole, refreshed by aiobotocore before expiry.

A team with `auth.teams.<team>.role_arn` has its Bedrock calls signed with that role, so
model access can live in the team's own AWS account and its spend lands on its own bill
(aws-samples/bedrock-access-gateway issue 242). The session carries the tag `team`, so
AWS's cost allocation by IAM principal attributes the spend even when several teams share
one role (the session name `bedrock-gateway-<team>` says it in CloudTrail too).

Refreshing is aiobotocore's: `AioDeferredRefreshableCredentials` calls our `_fetch` the
first time a request is signed and again before the credentials expire, under its own
lock, so a burst of requests costs one AssumeRole. Its default windows (refresh 15 min
before expiry, 10 min mandatory) would refresh a 15-minute session on every call; they
are scaled to the session's length here.

The credentials themselves are never logged, never in `/metrics` and never in
`check-config`: only the role ARN and the team are.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from aiobotocore.credentials import AioCredentialResolver, AioDeferredRefreshableCredentials
from aiobotocore.session import AioSession
from botocore.exceptions import ClientError

from gateway.config import TeamConfig, role_session_name

__all__ = ["RoleCredentials", "role_session"]

logger = logging.getLogger("gateway.bedrock")

# Refusals meaning "this role's trust policy does not allow sts:TagSession".
_TAG_REFUSALS = ("AccessDenied", "AccessDeniedException")


class RoleCredentials:
    """The refresh function of one team's role; `sts` is a long-lived STS client."""

    def __init__(self, team: str, role: TeamConfig, sts: Any) -> None:
        assert role.role_arn is not None
        self.team = team
        self._role = role
        self._sts = sts
        self._tagged = True

    def _request(self) -> dict[str, Any]:
        assert self._role.role_arn is not None
        request: dict[str, Any] = {
            "RoleArn": self._role.role_arn,
            "RoleSessionName": role_session_name(self.team),
            "DurationSeconds": self._role.role_duration_s,
        }
        if self._role.external_id is not None:
            request["ExternalId"] = self._role.external_id
        if self._tagged:
            request["Tags"] = [{"Key": "team", "Value": self.team[:256]}]
        return request

    async def fetch(self) -> dict[str, Any]:
        """AssumeRole, in the shape botocore's refreshable credentials expect."""
        try:
            answer = await self._sts.assume_role(**self._request())
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code") or "")
            if not self._tagged or code not in _TAG_REFUSALS:
                raise
            # The trust policy allows sts:AssumeRole but not sts:TagSession: assume the
            # role untagged from now on (the session name still names the team), once said.
            self._tagged = False
            logger.warning(
                "role %s refused the session tag `team` for team %s: assuming it untagged "
                "(allow sts:TagSession in its trust policy for cost allocation by team)",
                self._role.role_arn,
                self.team,
            )
            answer = await self._sts.assume_role(**self._request())
        credentials = answer["Credentials"]
        expiration = credentials["Expiration"]
        if isinstance(expiration, datetime):
            expiration = expiration.astimezone(UTC).isoformat()
        return {
            "access_key": credentials["AccessKeyId"],
            "secret_key": credentials["SecretAccessKey"],
            "token": credentials["SessionToken"],
            "expiry_time": expiration,
        }

    def refreshable(self) -> AioDeferredRefreshableCredentials:
        credentials = AioDeferredRefreshableCredentials(self.fetch, "assume-role")
        # Refresh in the last quarter of the session (at most 15 min before expiry, as
        # botocore does), and insist in the last sixth.
        duration = self._role.role_duration_s
        credentials._advisory_refresh_timeout = min(15 * 60, duration // 4)
        credentials._mandatory_refresh_timeout = min(10 * 60, duration // 6)
        return credentials


class _Provider:
    """A credential provider that always answers with one team's role credentials."""

    METHOD = "assume-role"
    CANONICAL_NAME = "bedrock-gateway-team-role"

    def __init__(self, credentials: AioDeferredRefreshableCredentials) -> None:
        self._credentials = credentials

    async def load(self) -> AioDeferredRefreshableCredentials:
        return self._credentials


def role_session(base: AioSession, credentials: RoleCredentials) -> AioSession:
    """A session like `base` (region, config) whose clients sign with the role."""
    session = AioSession()
    region = base.get_config_variable("region")
    if region:
        session.set_config_variable("region", region)
    # The session's credential chain is a component: this one has a single provider.
    session.register_component(
        "credential_provider", AioCredentialResolver([_Provider(credentials.refreshable())])
    )
    return session
