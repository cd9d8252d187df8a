"""Who may call each route, declared per endpoint in one table; an undeclared route is closed.

- ``PUBLIC``: anyone (health, metadata, metrics, the API document, the draw-a-digit page).
- ``CLIENT``: the prediction routes; need ``X-API-Key`` when ``API_KEY`` is set.
- ``ADMIN``: operations that change what serves; off (404) unless ``ADMIN_KEY`` is set, then
  they need ``X-Admin-Key``. The admin key is never the client key.

A route added without an entry here answers 403 to everyone, so forgetting to declare it fails
closed; ``tests/service/test_access.py`` walks the URL map and checks every route's rule.
"""

from __future__ import annotations

import hmac
from typing import Literal

from flask import Response, request
from pydantic import SecretStr

from app.errors import error_response

Access = Literal["public", "client", "admin"]
PUBLIC: Access = "public"
CLIENT: Access = "client"
ADMIN: Access = "admin"

ROUTES: dict[str, Access] = {
    "ops.live": PUBLIC,
    "ops.ready": PUBLIC,
    "ops.metadata": PUBLIC,
    "ops.v2_live": PUBLIC,
    "ops.v2_ready": PUBLIC,
    "ops.v2_model": PUBLIC,
    "ops.v2_model_ready": PUBLIC,
    "prometheus_metrics": PUBLIC,
    "openapi.doc_url": PUBLIC,
    "openapi.openapi": PUBLIC,
    "openapi.static": PUBLIC,
    "swagger.swagger": PUBLIC,
    "swagger.static": PUBLIC,
    "swagger.oauth2-redirect": PUBLIC,
    "static": PUBLIC,
    "web.index": PUBLIC,  # the draw-a-digit page; its API calls carry the key themselves
    "web.static": PUBLIC,
    "predict.predict": CLIENT,
    "predict.predict_image": CLIENT,
    "predict.tfserving_predict": CLIENT,
    "predict.v2_infer": CLIENT,
    "predict.feedback": CLIENT,
    "ops.reload": ADMIN,
}
API_KEY_HEADER = "X-API-Key"  # pragma: allowlist secret (a header name)
ADMIN_KEY_HEADER = "X-Admin-Key"


def _matches(header: str, secret: SecretStr) -> bool:
    given = request.headers.get(header, "")
    return hmac.compare_digest(given.encode(), secret.get_secret_value().encode())


def _unauthorized(header: str) -> Response:
    return error_response(401, "unauthorized", f"missing or wrong {header} header")


def check(endpoint: str, api_key: SecretStr | None, admin_key: SecretStr | None) -> Response | None:
    """The refusal for this request, or None when it may go on.

    Args:
        endpoint: The matched endpoint (``""`` when no route matched: Flask answers 404).
        api_key: The client key, if configured.
        admin_key: The admin key, if configured.

    Returns:
        A 401, 403 or 404 response, or None.
    """
    if not endpoint:
        return None
    rule = ROUTES.get(endpoint)
    if rule is None:
        return error_response(403, "forbidden", "this route declares no access rule")
    if rule == ADMIN:
        if admin_key is None:  # off: indistinguishable from a route that does not exist
            return error_response(404, "not_found", "no such endpoint; see /openapi/openapi.json")
        if not _matches(ADMIN_KEY_HEADER, admin_key):
            return _unauthorized(ADMIN_KEY_HEADER)
    if rule == CLIENT and api_key is not None and not _matches(API_KEY_HEADER, api_key):
        return _unauthorized(API_KEY_HEADER)
    return None
