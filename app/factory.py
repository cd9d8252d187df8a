"""``create_app``: settings, metrics, event sink, routes and hooks, wired; nothing started."""

from __future__ import annotations

import logging
import re
import time
from pathlib import Path
from typing import cast

import orjson
from flask import Response, g, request
from flask.json.provider import DefaultJSONProvider
from flask_openapi3.models.info import Info
from flask_openapi3.openapi import OpenAPI

from app import access
from app.drift_status import DriftStatus
from app.errors import error_response, register_error_handlers, validation_error
from app.metrics import ServiceMetrics
from app.reload import ReloadWatcher
from app.routes_ops import bp as ops_bp
from app.routes_predict import bp as predict_bp
from app.serving_model import ModelHolder, ServingModel, alias_target, load_model
from app.settings import Settings
from app.state import DRIFT, EXTENSION, RELOAD, ServiceState
from app.web import bp as web_bp
from mnist_contracts.event_store import EventSink, random_hex

log = logging.getLogger(__name__)

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,128}$")
# The body type each POST accepts (who may call what: app.access).
MULTIPART_ENDPOINTS = {"predict.predict_image"}
# Open Inference Protocol clients (tritonclient) send JSON without a Content-Type header.
UNTYPED_JSON_ENDPOINTS = {"predict.v2_infer"}


class _FastJSON(DefaultJSONProvider):
    """Flask's JSON provider, through orjson: a single image's body decodes about 5x faster.

    A body orjson refuses (not strict JSON: ``NaN`` tokens, nesting deeper than 1024 levels, or
    malformed) goes through Python's decoder, so the answers stay what they were: ``NaN`` is
    refused by the validation that names it, and too deep a nesting is a ValueError (Flask's 400)
    rather than a RecursionError (500). Objects orjson does not know go through Flask's own
    ``default``; keys keep their order.
    """

    sort_keys = False
    _OPTIONS = orjson.OPT_NON_STR_KEYS

    def loads(self, s: str | bytes, **kwargs: object) -> object:
        """Decode ``s``; anything malformed raises ValueError."""
        try:
            return orjson.loads(s)
        except orjson.JSONDecodeError:
            pass
        try:
            return super().loads(s, **kwargs)
        except RecursionError:
            raise ValueError("the JSON body is nested too deeply") from None

    def dumps(self, obj: object, **kwargs: object) -> str:
        """Encode ``obj`` compactly."""
        return orjson.dumps(obj, default=self.default, option=self._OPTIONS).decode()

    def response(self, *args: object, **kwargs: object) -> Response:
        """A JSON response from the arguments of ``jsonify`` (bytes straight from orjson)."""
        obj = self._prepare_response_obj(args, kwargs)
        body = orjson.dumps(
            obj, default=self.default, option=self._OPTIONS | orjson.OPT_APPEND_NEWLINE
        )
        # Flask's response class takes bytes; its type hints name only the sans-IO base.
        return cast("Response", self._app.response_class(body, mimetype=self.mimetype))  # type: ignore[arg-type]


def _check_content_type(endpoint: str) -> Response | None:
    # Read the raw header: request.mimetype is cached on first use, and the V2 fix-up below
    # must happen before anything parses the body.
    given = request.headers.get("Content-Type", "").split(";")[0].strip().lower()
    if endpoint in UNTYPED_JSON_ENDPOINTS:
        if "Inference-Header-Content-Length" in request.headers:
            return error_response(
                415, "unsupported_media_type",
                "the binary tensor extension is not supported; send JSON tensors",
            )  # fmt: skip
        if given == "":
            request.environ["CONTENT_TYPE"] = "application/json"
            given = "application/json"
    wanted = "multipart/form-data" if endpoint in MULTIPART_ENDPOINTS else "application/json"
    if given != wanted:
        return error_response(415, "unsupported_media_type", f"send Content-Type: {wanted}")
    return None


def _install_hooks(app: OpenAPI, settings: Settings) -> None:
    access_log = logging.getLogger("app.access")

    @app.before_request
    def start() -> Response | None:
        g.started = time.perf_counter()
        given = request.headers.get("X-Request-ID", "")
        g.request_id = given if _REQUEST_ID.match(given) else random_hex(16)
        endpoint = request.endpoint or ""
        refused = access.check(endpoint, settings.api_key, settings.admin_key)
        if refused is not None:
            return refused
        if request.method == "POST" and endpoint:
            return _check_content_type(endpoint)
        return None

    @app.after_request
    def finish(response: Response) -> Response:
        response.headers["X-Request-ID"] = g.get("request_id", "")
        elapsed_ms = (time.perf_counter() - g.get("started", time.perf_counter())) * 1000
        access_log.info(
            "request",
            extra={
                "fields": {
                    "method": request.method,
                    "path": request.path,
                    "status": response.status_code,
                    "duration_ms": round(elapsed_ms, 2),
                }
            },
        )
        return response


def _event_sink(settings: Settings, metrics: ServiceMetrics) -> EventSink:
    """The Redis stream when ``EVENTS_URL`` is set, else the embedded SQLite log."""
    available = metrics.event_store_up.set
    if settings.events_url is None:
        from mnist_contracts.event_store.sqlite import SqliteSink

        return SqliteSink(
            settings.prediction_log, settings.prediction_log_sync, settings.events_buffer,
            metrics.events_dropped.inc, available,
        )  # fmt: skip
    from mnist_contracts.event_store.redis_stream import RedisSink, StreamConfig

    config = StreamConfig(
        settings.events_url,
        settings.events_prefix,
        settings.events_maxlen,
        settings.events_image_share,
        settings.events_buffer,
        settings.events_feedback_ttl_s,
    )
    return RedisSink(config, metrics.events_published.inc, metrics.events_dropped.inc, available)


def create_app(settings: Settings | None = None) -> OpenAPI:
    """Build the service: settings, routes, hooks and the worker's service objects, wired.

    Nothing starts here (no thread, no model load): :func:`app.lifecycle.start` does that in
    the worker, called by Gunicorn's ``post_worker_init`` hook. Under Gunicorn this runs in each
    worker, never in the master.

    Args:
        settings: Settings (default: from the environment and ``.env``).

    Returns:
        The Flask (OpenAPI) application.
    """
    if settings is None:
        settings = Settings.from_env(Path.cwd())
    app = OpenAPI(
        __name__,
        info=Info(title="MNIST digit classifier", version="1.0.0"),
        security_schemes={
            "api_key": {"type": "apiKey", "in": "header", "name": access.API_KEY_HEADER},
            "admin_key": {"type": "apiKey", "in": "header", "name": access.ADMIN_KEY_HEADER},
        },
        validation_error_callback=validation_error,
    )
    app.config["MAX_CONTENT_LENGTH"] = settings.max_content_length
    app.json = _FastJSON(app)
    metrics = ServiceMetrics(app)
    holder = ModelHolder()
    prediction_log = _event_sink(settings, metrics)
    app.extensions[EXTENSION] = ServiceState(settings, holder, metrics, prediction_log)
    app.register_api(predict_bp)
    app.register_api(ops_bp)
    app.register_blueprint(web_bp)
    register_error_handlers(app)
    _install_hooks(app, settings)

    def loader(source: str) -> ServingModel:
        return load_model(
            source, settings.model_name, settings.metrics_file,
            variant=settings.model_variant, threads=settings.tf_threads,
            commit=settings.git_commit,
        )  # fmt: skip

    def loaded(model: ServingModel) -> None:
        info = model.info
        metrics.model_loaded(
            info.name, info.version, info.load_seconds, info.registry_version, info.variant
        )

    app.extensions[RELOAD] = ReloadWatcher(
        holder,
        loader,
        loaded,
        settings.state_dir,
        settings.reload_poll_s,
        follow_s=settings.model_follow_s,
        alias_target=alias_target,
        on_refused=metrics.model_refused.inc,
    )
    app.extensions[DRIFT] = DriftStatus(
        settings.drift_report, metrics, settings.events_url, settings.events_prefix
    )
    return app
