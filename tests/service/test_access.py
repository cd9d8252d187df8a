"""Every route's access rule, checked by walking the URL map (a new route must declare one)."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from flask import Flask

from app import access, create_app
from app.settings import Settings

API, ADMIN = "client-secret", "admin-secret"  # pragma: allowlist secret


def routes(app: Flask) -> list[tuple[str, str, str]]:
    """(endpoint, a concrete URL, method) for every rule of the app."""
    found = []
    for rule in app.url_map.iter_rules():
        url = re.sub(r"<(?:[a-z]+:)?(\w+)>", "mnist", rule.rule)
        method = "POST" if "POST" in rule.methods else "GET"  # type: ignore[operator]
        found.append((rule.endpoint, url, method))
    return found


def test_every_route_declares_its_access(make_settings: Callable[..., Settings]) -> None:
    app = create_app(make_settings())
    undeclared = {endpoint for endpoint, _, _ in routes(app)} - set(access.ROUTES)
    assert not undeclared, f"routes without an access rule in app/access.py: {undeclared}"
    assert set(access.ROUTES) <= {endpoint for endpoint, _, _ in routes(app)}  # no stale rule


@pytest.mark.parametrize("keys", ["none", "both"])
def test_each_rule_holds_on_every_route(make_settings: Callable[..., Settings], keys: str) -> None:
    configured = {"api_key": API, "admin_key": ADMIN} if keys == "both" else {}
    client = create_app(make_settings(**configured)).test_client()
    for endpoint, url, method in routes(client.application):
        rule = access.ROUTES[endpoint]
        bare = client.open(url, method=method, json={})
        if rule == access.PUBLIC:
            assert bare.status_code not in (401, 403), (endpoint, bare.status_code)
        elif rule == access.CLIENT:
            expected_bare = 401 if keys == "both" else None
            if expected_bare:
                assert bare.status_code == 401, endpoint
                right = client.open(url, method=method, json={}, headers={"X-API-Key": API})
                assert right.status_code != 401, endpoint
                # The admin key is not a client key.
                admin = client.open(url, method=method, json={}, headers={"X-API-Key": ADMIN})
                assert admin.status_code == 401, endpoint
            else:
                assert bare.status_code not in (401, 403, 404), endpoint
        else:  # admin
            if keys == "none":
                assert bare.status_code == 404, endpoint  # off by default
                continue
            assert bare.status_code == 401, endpoint
            wrong = client.open(url, method=method, json={}, headers={"X-Admin-Key": "nope"})
            assert wrong.status_code == 401, endpoint
            as_client = client.open(url, method=method, json={}, headers={"X-Admin-Key": API})
            assert as_client.status_code == 401, endpoint  # the client key is not an admin key
            right = client.open(url, method=method, json={}, headers={"X-Admin-Key": ADMIN})
            assert right.status_code not in (401, 403, 404), endpoint


def test_an_undeclared_route_is_closed(make_settings: Callable[..., Settings]) -> None:
    app = create_app(make_settings(admin_key=ADMIN))
    app.add_url_rule("/ops/forgotten", "ops.forgotten", lambda: "secret things")
    client = app.test_client()
    for headers in ({}, {"X-Admin-Key": ADMIN}):
        response = client.get("/ops/forgotten", headers=headers)
        assert response.status_code == 403
        assert response.get_json()["message"] == "this route declares no access rule"


def test_the_ingress_publishes_client_routes_and_never_admin_or_metrics(
    make_settings: Callable[..., Settings],
) -> None:
    import yaml

    from tests.support import PROJECT_ROOT

    ingress = yaml.safe_load((PROJECT_ROOT / "kubernetes/base/ingress.yaml").read_text())
    paths = [p for rule in ingress["spec"]["rules"] for p in rule["http"]["paths"]]
    app = create_app(make_settings())

    def exposed(url: str) -> bool:
        return any(
            url == p["path"] if p["pathType"] == "Exact" else url.startswith(p["path"])
            for p in paths
        )

    published = {endpoint for endpoint, url, _ in routes(app) if exposed(url)}
    assert {e for e, rule in access.ROUTES.items() if rule == access.CLIENT} <= published
    assert not {e for e in published if access.ROUTES[e] == access.ADMIN}
    assert "prometheus_metrics" not in published
