"""Any method on any path: an OpenAI-shaped answer, never a 5xx, and no new metric series.

Scanners try paths by the thousand. Each must cost a 404 (or 405, or 401), not a new time
series: labels come from the route table, never from the path a client made up.
"""

from __future__ import annotations

import string

from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

from tests.fuzz.conftest import FUZZ, InProcessGateway, assert_openai_answer

KNOWN_ROUTE_LABELS = {"/v1/chat/completions", "/v1/embeddings", "/v1/models", "/v1/usage", "other"}

segments = st.one_of(
    st.text(alphabet=string.ascii_letters + string.digits + "._~-", min_size=1, max_size=12),
    st.sampled_from(["v1", "models", "chat", "completions", "embeddings", "usage", "%ED%A0%80"]),
)
paths = st.lists(segments, min_size=1, max_size=4).map(lambda parts: "/v1/" + "/".join(parts))


@settings(FUZZ, max_examples=100)
@given(method=st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH"]), path=paths)
def test_made_up_paths(app: InProcessGateway, method: str, path: str) -> None:
    assert_openai_answer(app.request(method, path, content=b"{}"))


def test_route_labels_come_from_the_route_table(app: InProcessGateway) -> None:
    for index in range(20):
        app.get(f"/v1/scanner-{index}")
        app.get(f"/v1/models/made-up-{index}")
    families = text_string_to_metric_families(app.get("/metrics").text)
    (inflight,) = [family for family in families if family.name == "gateway_inflight_requests"]
    assert {sample.labels["route"] for sample in inflight.samples} <= KNOWN_ROUTE_LABELS
