"""`server.cors`: browser apps can call the gateway; preflights need no key and bill nothing."""

from __future__ import annotations

from tests.harness import API_KEY, GatewayFactory, ledger, script

ORIGIN = "https://app.example.com"
PREFLIGHT = {
    "origin": ORIGIN,
    "access-control-request-method": "POST",
    "access-control-request-headers": "authorization,content-type",
}
CHAT = {"model": "nova-micro", "messages": [{"role": "user", "content": script(reply="ok")}]}


def test_a_preflight_from_a_listed_origin_needs_no_key_and_is_no_record(
    start_gateway: GatewayFactory,
) -> None:
    gateway = start_gateway(server={"cors": {"allow_origins": [ORIGIN]}})
    with gateway.http() as http:
        response = http.options("/v1/chat/completions", headers=PREFLIGHT)
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == ORIGIN
    allowed = response.headers["access-control-allow-headers"].lower()
    assert "authorization" in allowed and "x-api-key" in allowed
    assert "POST" in response.headers["access-control-allow-methods"]
    assert response.headers["access-control-max-age"] == "600"
    assert ledger(gateway) == []


def test_a_preflight_from_another_origin_gets_no_cors_headers(
    start_gateway: GatewayFactory,
) -> None:
    gateway = start_gateway(server={"cors": {"allow_origins": [ORIGIN]}})
    with gateway.http() as http:
        response = http.options(
            "/v1/chat/completions", headers={**PREFLIGHT, "origin": "https://evil.example"}
        )
    assert response.status_code == 400
    assert "access-control-allow-origin" not in response.headers
    assert ledger(gateway) == []


def test_an_actual_request_from_a_listed_origin_can_read_the_gateway_headers(
    start_gateway: GatewayFactory,
) -> None:
    gateway = start_gateway(server={"cors": {"allow_origins": [ORIGIN]}})
    with gateway.http() as http:
        response = http.post(
            "/v1/chat/completions",
            json=CHAT,
            headers={"origin": ORIGIN, "authorization": f"Bearer {API_KEY}"},
        )
        other = http.post(
            "/v1/chat/completions",
            json=CHAT,
            headers={"origin": "https://evil.example", "authorization": f"Bearer {API_KEY}"},
        )
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == ORIGIN
    exposed = response.headers["access-control-expose-headers"].lower()
    assert "x-request-id" in exposed and "x-gateway-model" in exposed
    assert "retry-after" in exposed
    assert "access-control-allow-origin" not in other.headers
    assert len(ledger(gateway)) == 2  # the requests themselves bill as ever


def test_without_origins_no_cors_header_is_sent(start_gateway: GatewayFactory) -> None:
    gateway = start_gateway()
    with gateway.http() as http:
        response = http.post(
            "/v1/chat/completions",
            json=CHAT,
            headers={"origin": ORIGIN, "authorization": f"Bearer {API_KEY}"},
        )
        preflight = http.options("/v1/chat/completions", headers=PREFLIGHT)
    assert response.status_code == 200
    assert not any(name.startswith("access-control-") for name in response.headers)
    assert not any(name.startswith("access-control-") for name in preflight.headers)
    # No CORS: an OPTIONS is an ordinary request, a wrong method, not a 401 and no record.
    assert preflight.status_code == 405
    assert preflight.headers["allow"] == "POST"
    assert [row["status"] for row in ledger(gateway)] == [200]
