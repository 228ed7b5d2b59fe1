"""Model resolution: names, aliases, ARNs, unlisted ids."""

from __future__ import annotations

import pytest

from gateway.bedrock.catalog import ModelCatalog
from gateway.config import ModelConfig
from gateway.errors import NotFoundError

MODELS = [
    ModelConfig(name="claude", bedrock_id="anthropic.claude-v2", aliases=["gpt-4o"]),
    ModelConfig(
        name="profile",
        bedrock_id="arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/x",
        region="eu-west-1",
    ),
    ModelConfig(name="embed", bedrock_id="amazon.titan-embed-text-v2:0", kind="embedding"),
]


@pytest.mark.parametrize(
    ("name", "public", "bedrock_id", "region"),
    [
        ("claude", "claude", "anthropic.claude-v2", None),
        ("gpt-4o", "claude", "anthropic.claude-v2", None),
        (
            "profile",
            "profile",
            "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/x",
            "eu-west-1",
        ),
    ],
)
def test_resolve_listed(name: str, public: str, bedrock_id: str, region: str | None) -> None:
    model = ModelCatalog(MODELS, allow_unlisted=False).resolve(name)
    assert (model.public_name, model.bedrock_id, model.region) == (public, bedrock_id, region)
    assert model.metric_label == public


def test_unknown_model_is_404_model_not_found() -> None:
    with pytest.raises(NotFoundError) as info:
        ModelCatalog(MODELS, allow_unlisted=False).resolve("meta.llama3-8b-instruct-v1:0")
    assert info.value.status == 404
    assert info.value.code == "model_not_found"
    assert info.value.param == "model"


def test_unlisted_ids_pass_through_when_allowed() -> None:
    model = ModelCatalog(MODELS, allow_unlisted=True).resolve("meta.llama3-8b-instruct-v1:0")
    assert model.bedrock_id == "meta.llama3-8b-instruct-v1:0"
    assert model.config is None and model.metric_label == "unlisted"


def test_public_names_include_aliases_in_config_order() -> None:
    assert ModelCatalog(MODELS, allow_unlisted=False).public_names() == [
        "claude",
        "gpt-4o",
        "profile",
        "embed",
    ]
