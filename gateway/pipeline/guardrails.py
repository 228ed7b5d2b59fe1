"""Which Bedrock guardrail a request is sent with: the most specific one the config sets.

Key > team > model > default (CONTRACT v2, "Governance"). Organisations put a gateway in
front of Bedrock to apply their rules once for every app, and some refuse any model call
without a guardrail (aws-samples/bedrock-access-gateway issue 129), so the choice is the
operator's alone: `gateway.translate.shared.guardrails` takes any guardrail field out of
a caller's request.

`GuardrailPolicy.build` turns the config into four dict lookups once per config (and on
SIGHUP, with the rest of the `Runtime`); with no guardrail configured anywhere it returns
None, and a request pays one attribute test for the feature (`RequestContext.guardrail_for`).

Only chat models get a guardrail: embeddings have none to apply.

* A key's own guardrail comes from its `auth.keys` entry; keys made through the admin API
  (`source: store`) have none of their own, but their team's and the rest apply.
* A team's comes from `auth.teams`, and binds every key of that team, stored keys too.
* A model's is found under its config name or any alias; unlisted pass-through ids get
  only the default.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from gateway.config import GatewayConfig, GuardrailConfig
from gateway.translate.shared.guardrails import Guardrail

if TYPE_CHECKING:
    from gateway.bedrock.catalog import ResolvedModel
    from gateway.keys.index import Principal

__all__ = ["GuardrailPolicy", "guardrail_of"]


def guardrail_of(config: GuardrailConfig) -> Guardrail:
    """The config entry as the translators' plain value."""
    return Guardrail(
        id=config.id,
        version=config.version,
        trace=config.trace,
        stream_processing_mode=config.stream_processing_mode,
    )


class GuardrailPolicy:
    """Config-derived lookups: `for_request(principal, model)` -> the guardrail, or None."""

    __slots__ = ("_default", "_keys", "_models", "_teams")

    def __init__(
        self,
        *,
        keys: Mapping[str, Guardrail],
        teams: Mapping[str, Guardrail],
        models: Mapping[str, Guardrail],
        default: Guardrail | None,
    ) -> None:
        self._keys = dict(keys)
        self._teams = dict(teams)
        self._models = dict(models)
        self._default = default

    @classmethod
    def build(cls, config: GatewayConfig) -> GuardrailPolicy | None:
        """The policy of `config`, or None when it sets no guardrail at all."""
        keys = {k.id: guardrail_of(k.guardrail) for k in config.auth.keys if k.guardrail}
        teams = {
            name: guardrail_of(team.guardrail)
            for name, team in config.auth.teams.items()
            if team.guardrail is not None
        }
        section = config.guardrails
        by_name = {name: guardrail_of(g) for name, g in section.models.items()}
        models: dict[str, Guardrail] = {}
        for model in config.models:
            # The entry may name the model or one of its aliases; both reach one model,
            # which a request resolves to its config name.
            for public in (model.name, *model.aliases):
                if public in by_name:
                    models.setdefault(model.name, by_name[public])
        default = guardrail_of(section.default) if section.default is not None else None
        if not (keys or teams or models or default):
            return None
        return cls(keys=keys, teams=teams, models=models, default=default)

    def for_request(self, principal: Principal, model: ResolvedModel) -> Guardrail | None:
        if model.kind != "chat":
            return None
        if principal.source == "config":
            found = self._keys.get(principal.key_id)
            if found is not None:
                return found
        if principal.team is not None:
            found = self._teams.get(principal.team)
            if found is not None:
                return found
        if model.config is not None:
            found = self._models.get(model.public_name)
            if found is not None:
                return found
        return self._default
