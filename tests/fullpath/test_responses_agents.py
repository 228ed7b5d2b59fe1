"""The OpenAI Agents SDK with its default model (the Responses API) and a function tool,
end to end: the SDK -> our app over HTTP -> aiobotocore -> the emulator, which asks for
the tool; the SDK runs it and sends the result back; Bedrock's answer is the final output."""

from __future__ import annotations

import json
from typing import Any

import pytest
from openai import AsyncOpenAI

from tests.fullpath.conftest import API_KEY, RunningGateway, ledger, script

agents = pytest.importorskip("agents")


def _agent(calls: list[str]) -> Any:
    @agents.function_tool
    def get_weather(city: str) -> str:
        """The weather in a city."""
        calls.append(city)
        return f"Sunny in {city}"

    return agents.Agent(
        name="weather",
        instructions="Answer with the tool's result.",
        tools=[get_weather],
        model="claude-3-5-sonnet",
    )


@pytest.mark.parametrize("streamed", [False, True])
async def test_agent_runs_a_tool_loop_through_the_gateway(
    gateway: RunningGateway, streamed: bool
) -> None:
    client = AsyncOpenAI(base_url=gateway.url + "/v1", api_key=API_KEY, max_retries=0)
    agents.set_tracing_disabled(True)
    calls: list[str] = []
    ask = script(
        "Weather in Lima?", tool_calls=[{"name": "get_weather", "input": {"city": "Lima"}}]
    )
    run_config = agents.RunConfig(model_provider=agents.OpenAIProvider(openai_client=client))
    try:
        if streamed:
            run = agents.Runner.run_streamed(_agent(calls), ask, run_config=run_config, max_turns=4)
            async for _ in run.stream_events():
                pass
            output = run.final_output
        else:
            result = await agents.Runner.run(_agent(calls), ask, run_config=run_config, max_turns=4)
            output = result.final_output
    finally:
        await client.close()
    assert calls == ["Lima"]
    assert output == "You said: Sunny in Lima"
    rows = ledger(gateway)
    assert [(row["route"], row["status"], row["stream"]) for row in rows] == [
        ("/v1/responses", 200, int(streamed))
    ] * 2
    assert json.dumps(rows[0]["model"]) == '"claude-3-5-sonnet"'
