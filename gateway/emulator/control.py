"""The emulator's AWS side beyond Bedrock Runtime: SigV4 scopes, STS AssumeRole, listings.

Enough of three more wire formats for the gateway's governance features to be tested
offline, end to end, with real aiobotocore on the other side:

* the SigV4 `Authorization` header names the access key id and the region a request was
  signed for (`Credential=AKID/20261205/us-west-2/bedrock/aws4_request`): the emulator
  plays every region at one endpoint, and a test sees which credentials signed a call;
* STS `AssumeRole` (AWS query protocol: a form body in, XML out), issuing fresh session
  credentials and remembering which role and session tags each access key id stands for;
  a role whose ARN contains `untagged` refuses session tags as a trust policy without
  `sts:TagSession` does;
* the Bedrock control plane's `ListFoundationModels` (`GET /foundation-models`) and
  `ListInferenceProfiles` (`GET /inference-profiles`), from a catalogue a test may change
  while everything runs (`add_foundation_model`).
"""

from __future__ import annotations

import json
import re
import secrets
import string
import threading
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs
from xml.sax.saxutils import escape

__all__ = ["Call", "ControlPlane", "Signature", "signature"]

_SCOPE = re.compile(rb"Credential=([^/\s]+)/\d{8}/([a-z0-9-]+)/([a-z0-9-]+)/aws4_request")
_STS_NS = "https://sts.amazonaws.com/doc/2011-06-15/"
_MAX_CALLS = 2048
_LETTERS = string.ascii_letters + string.digits


@dataclass(frozen=True, slots=True)
class Signature:
    access_key_id: str
    region: str
    service: str


def signature(headers: list[tuple[bytes, bytes]]) -> Signature | None:
    """Who signed the request and for which region and service (SigV4 only)."""
    for name, value in headers:
        if name.lower() == b"authorization":
            match = _SCOPE.search(value)
            if match is None:
                return None
            key, region, service = (part.decode("ascii") for part in match.groups())
            return Signature(key, region, service)
    return None


@dataclass(frozen=True, slots=True)
class Call:
    """One request the emulator answered (or refused), for tests to inspect."""

    operation: str
    model_id: str | None
    region: str | None
    access_key_id: str | None


@dataclass(frozen=True, slots=True)
class AssumedRole:
    role_arn: str
    session_name: str
    tags: dict[str, str]
    external_id: str | None
    duration_s: int


def _model(
    model_id: str,
    *,
    provider: str,
    inputs: tuple[str, ...] = ("TEXT",),
    outputs: tuple[str, ...] = ("TEXT",),
    streaming: bool = True,
    inference: tuple[str, ...] = ("ON_DEMAND",),
) -> dict[str, Any]:
    return {
        "modelId": model_id,
        "modelName": model_id.split(".", 1)[-1],
        "providerName": provider,
        "inputModalities": list(inputs),
        "outputModalities": list(outputs),
        "responseStreamingSupported": streaming,
        "customizationsSupported": [],
        "inferenceTypesSupported": list(inference),
        "modelLifecycle": {"status": "ACTIVE"},
    }


def _default_models() -> list[dict[str, Any]]:
    return [
        _model(
            "anthropic.claude-sonnet-4-5-20250929-v1:0",
            provider="Anthropic",
            inputs=("TEXT", "IMAGE"),
            inference=("INFERENCE_PROFILE",),
        ),
        _model(
            "amazon.nova-micro-v1:0",
            provider="Amazon",
            inference=("ON_DEMAND", "INFERENCE_PROFILE"),
        ),
        _model(
            "amazon.titan-embed-text-v2:0",
            provider="Amazon",
            outputs=("EMBEDDING",),
            streaming=False,
        ),
        _model(
            "stability.sd3-5-large-v1:0",
            provider="Stability AI",
            outputs=("IMAGE",),
            streaming=False,
        ),
    ]


def _default_profiles() -> list[tuple[str, str, str]]:
    """(profile id, type, model id) of the system profiles every emulated region offers."""
    return [
        (f"us.{model}", "SYSTEM_DEFINED", model)
        for model in ("anthropic.claude-sonnet-4-5-20250929-v1:0", "amazon.nova-micro-v1:0")
    ]


def _random(prefix: str, size: int, alphabet: str = string.ascii_uppercase + string.digits) -> str:
    return prefix + "".join(secrets.choice(alphabet) for _ in range(size))


@dataclass
class ControlPlane:
    """The emulated account: its models, profiles, issued role sessions and a call log."""

    account: str = "123456789012"
    models: list[dict[str, Any]] = field(default_factory=_default_models)
    profiles: list[tuple[str, str, str]] = field(default_factory=_default_profiles)
    assumed: dict[str, AssumedRole] = field(default_factory=dict)
    calls: deque[Call] = field(default_factory=lambda: deque(maxlen=_MAX_CALLS))
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add_foundation_model(self, model_id: str, **kwargs: Any) -> None:
        """A model the account gains while the gateway runs (tests of discovery)."""
        kwargs.setdefault("provider", model_id.split(".", 1)[0])
        with self._lock:
            self.models = [*self.models, _model(model_id, **kwargs)]

    def add_inference_profile(
        self, profile_id: str, model_id: str, kind: str = "SYSTEM_DEFINED"
    ) -> None:
        with self._lock:
            self.profiles = [*self.profiles, (profile_id, kind, model_id)]

    def record(self, call: Call) -> None:
        self.calls.append(call)

    def list_foundation_models(self, region: str) -> bytes:
        summaries = [
            {**model, "modelArn": f"arn:aws:bedrock:{region}::foundation-model/{model['modelId']}"}
            for model in self.models
        ]
        return json.dumps({"modelSummaries": summaries}).encode()

    def list_inference_profiles(self, region: str, query: bytes) -> bytes:
        wanted = parse_qs(query.decode("ascii", "replace")).get("type")
        summaries = []
        for profile_id, kind, model_id in self.profiles:
            if wanted and kind not in wanted:
                continue
            account = self.account if kind == "APPLICATION" else ""
            summaries.append(
                {
                    "inferenceProfileName": profile_id,
                    "inferenceProfileId": profile_id,
                    "inferenceProfileArn": (
                        f"arn:aws:bedrock:{region}:{account or self.account}:"
                        f"{'application-' if kind == 'APPLICATION' else ''}"
                        f"inference-profile/{profile_id}"
                    ),
                    "models": [
                        {"modelArn": f"arn:aws:bedrock:{region}::foundation-model/{model_id}"}
                    ],
                    "status": "ACTIVE",
                    "type": kind,
                }
            )
        return json.dumps({"inferenceProfileSummaries": summaries}).encode()

    def sts(self, body: bytes) -> tuple[int, bytes]:
        """An STS query-protocol call: (HTTP status, XML body)."""
        form = {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace")).items()}
        if form.get("Action") != "AssumeRole":
            return 400, _sts_error(
                "InvalidAction", f"Could not find operation {form.get('Action')}"
            )
        role_arn = form.get("RoleArn", "")
        session_name = form.get("RoleSessionName", "")
        if not re.fullmatch(r"[\w+=,.@-]{2,64}", session_name):
            return 400, _sts_error("ValidationError", "Invalid RoleSessionName")
        tags: dict[str, str] = {}
        number = 1
        while f"Tags.member.{number}.Key" in form:
            tags[form[f"Tags.member.{number}.Key"]] = form.get(f"Tags.member.{number}.Value", "")
            number += 1
        if tags and "untagged" in role_arn:
            return 403, _sts_error(
                "AccessDenied",
                f"User: arn:aws:iam::{self.account}:user/gateway is not authorized to perform: "
                f"sts:TagSession on resource: {role_arn}",
            )
        duration = int(form.get("DurationSeconds") or 3600)
        key = _random("ASIA", 16)
        self.assumed[key] = AssumedRole(
            role_arn, session_name, tags, form.get("ExternalId"), duration
        )
        expires = (datetime.now(UTC) + timedelta(seconds=duration)).strftime("%Y-%m-%dT%H:%M:%SZ")
        role_name = role_arn.rsplit("/", 1)[-1]
        xml = (
            f'<AssumeRoleResponse xmlns="{_STS_NS}"><AssumeRoleResult>'
            f"<Credentials><AccessKeyId>{key}</AccessKeyId>"
            f"<SecretAccessKey>{_random('', 40, _LETTERS)}</SecretAccessKey>"
            f"<SessionToken>{_random('FwoG', 120, _LETTERS)}</SessionToken>"
            f"<Expiration>{expires}</Expiration></Credentials>"
            f"<AssumedRoleUser><AssumedRoleId>AROA{key[4:]}:{escape(session_name)}</AssumedRoleId>"
            f"<Arn>arn:aws:sts::{self.account}:assumed-role/{escape(role_name)}/{escape(session_name)}</Arn>"
            f"</AssumedRoleUser><PackedPolicySize>{len(tags)}</PackedPolicySize></AssumeRoleResult>"
            f"<ResponseMetadata><RequestId>{_random('', 32).lower()}</RequestId></ResponseMetadata>"
            "</AssumeRoleResponse>"
        )
        return 200, xml.encode()


def _sts_error(code: str, message: str) -> bytes:
    return (
        f'<ErrorResponse xmlns="{_STS_NS}"><Error><Type>Sender</Type><Code>{code}</Code>'
        f"<Message>{escape(message)}</Message></Error>"
        f"<RequestId>{_random('', 32).lower()}</RequestId></ErrorResponse>"
    ).encode()
