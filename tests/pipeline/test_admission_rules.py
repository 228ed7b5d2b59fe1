"""Admission rules that are not limits: prices under a budget, model ids, bounded headers.

Issue 19 (6): a key or team with a monthly budget may not call a model whose price is
unknown (its calls would never count against the budget), unless the operator opts out.
Issue 19 (11): a caller's model id reaches a URL path, a header and the ledger, so it must
have Bedrock's id syntax; the dropped-parameter header is bounded whatever the caller sends.
"""

from __future__ import annotations

from typing import Any

import openai
import pytest

from tests.harness import API_KEY, GatewayFactory, ledger, sha

CHAT = [{"role": "user", "content": "hi"}]


def keys(**limits: Any) -> dict[str, Any]:
    return {"keys": [{"id": "app1", "key_sha256": sha(API_KEY), "team": "search", **limits}]}


@pytest.mark.parametrize(
    "auth",
    [
        keys(budget_usd_monthly="5"),
        {**keys(), "teams": {"search": {"budget_usd_monthly": "5"}}},
    ],
    ids=["key budget", "team budget"],
)
def test_a_budget_may_not_call_an_unpriced_model(
    start_gateway: GatewayFactory, auth: dict[str, Any]
) -> None:
    gateway = start_gateway(auth=auth, allow_unlisted_models=True)
    with gateway.client() as client:
        # nova-micro has a bundled price; the listed "broken-model" and a raw id have none.
        client.chat.completions.create(model="nova-micro", messages=CHAT)
        for model in ("mystery.unpriced-model-v1:0", "app-profile"):
            with pytest.raises(openai.PermissionDeniedError) as info:
                client.chat.completions.create(model=model, messages=CHAT)
            assert isinstance(info.value.body, dict)
            assert info.value.body["code"] == "model_not_priced"
            assert "price" in info.value.body["message"]
    assert [row["status"] for row in ledger(gateway)] == [200, 403, 403]


def test_without_a_budget_or_with_the_opt_out_unpriced_models_pass(
    start_gateway: GatewayFactory,
) -> None:
    free = start_gateway(auth=keys(), allow_unlisted_models=True)
    with free.client() as client:
        client.chat.completions.create(model="mystery.unpriced-model-v1:0", messages=CHAT)
    opted_out = start_gateway(
        auth=keys(budget_usd_monthly="5"),
        allow_unlisted_models=True,
        limits={"allow_unpriced_models": True},
    )
    with opted_out.client() as client:
        client.chat.completions.create(model="mystery.unpriced-model-v1:0", messages=CHAT)


@pytest.mark.parametrize(
    "model",
    ["bad\nid", "m\u00e9t\u00e9o.model", "x" * 2049, "-leading-dash", "a b", "model?x=1"],
    ids=["newline", "non-ascii", "too long", "leading dash", "space", "query"],
)
def test_an_unlisted_model_id_must_have_bedrock_syntax(
    start_gateway: GatewayFactory, model: str
) -> None:
    gateway = start_gateway(allow_unlisted_models=True)
    with gateway.http() as http:
        response = http.post(
            "/v1/chat/completions",
            json={"model": model, "messages": CHAT},
            headers={"authorization": f"Bearer {API_KEY}"},
        )
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "model"
    assert response.json()["error"]["code"] == "invalid_model_id"
    (row,) = ledger(gateway)
    assert row["bedrock_model_id"] is None or "\n" not in row["bedrock_model_id"]


def test_the_dropped_parameters_header_is_bounded(start_gateway: GatewayFactory) -> None:
    gateway = start_gateway(drop_unsupported_params=True)
    unknown = {f"unknown_field_{n}": n for n in range(15_000)}
    with gateway.http() as http:
        response = http.post(
            "/v1/chat/completions",
            json={"model": "nova-micro", "messages": CHAT, **unknown},
            headers={"authorization": f"Bearer {API_KEY}"},
        )
    assert response.status_code == 200
    header = response.headers["x-gateway-dropped-params"]
    assert len(header) < 1000
    assert header.endswith("(+14980 more)")
