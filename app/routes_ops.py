"""Health, metadata, V2 health/metadata, and the authenticated admin reload."""

from __future__ import annotations

import logging

from flask import Response, current_app, jsonify
from flask_openapi3.blueprint import APIBlueprint
from flask_openapi3.models.tag import Tag

from app.errors import error_response, unknown_model
from app.reload import ReloadWatcher, write_control
from app.schemas import (
    ErrorResponse,
    HealthResponse,
    MetadataResponse,
    ModelPath,
    ReloadRequest,
    ReloadResponse,
    V2Live,
    V2ModelMetadata,
    V2ModelReady,
    V2Ready,
)
from app.serving_model import ModelLoadError
from app.state import RELOAD, state
from mnist_contracts.lite import SAVEDMODEL
from mnist_contracts.model import IMAGE_SHAPE, INPUT_NAME, NUM_CLASSES, OUTPUT_NAME

log = logging.getLogger(__name__)
ops_tag = Tag(name="operations", description="Health, metadata, reload")
bp = APIBlueprint("ops", __name__, abp_tags=[ops_tag])

INPUT_SCHEMA = {"name": INPUT_NAME, "datatype": "UINT8", "shape": [-1, *IMAGE_SHAPE]}
OUTPUT_SCHEMA = {"name": OUTPUT_NAME, "datatype": "FP32", "shape": [-1, NUM_CLASSES]}
Reply = Response


@bp.get("/health/live", responses={200: HealthResponse})
def live() -> Reply:
    """The process is up."""
    return jsonify(status="live")


@bp.get("/health/ready", responses={200: HealthResponse, 503: ErrorResponse})
def ready() -> Reply:
    """The model is loaded and warmed up, and it is the latest accepted reload (503 otherwise)."""
    service = state()
    model = service.model()
    watcher: ReloadWatcher = current_app.extensions[RELOAD]
    if watcher.lagging:
        return error_response(503, "not_ready", f"{watcher.lagging}; retrying")
    # A store outage leaves the worker ready (it answers and buffers); it says so here.
    return jsonify(
        status="ready",
        model_version=model.info.version,
        registry_version=model.info.registry_version,
        following=watcher.following,
        refused=watcher.refused,
        event_store="up" if service.prediction_log.available else "down",
    )


@bp.get("/metadata", responses={200: MetadataResponse, 503: ErrorResponse})
def metadata() -> Reply:
    """The model that answers: name, version, git commit, test metrics, input/output schema."""
    info = state().model().info
    return jsonify(
        model_name=info.name,
        model_version=info.version,
        variant=info.variant,
        params_digest=info.params_digest,
        registry_version=info.registry_version,
        alias=info.alias,
        git_commit=info.git_commit,
        source=info.source,
        test_metrics=info.metrics,
        load_seconds=round(info.load_seconds, 3),
        input={**INPUT_SCHEMA, "description": "28x28 pixels 0-255, white digit on black"},
        output={**OUTPUT_SCHEMA, "description": "probabilities of the digits 0-9"},
    )


@bp.get("/v2/health/live", responses={200: V2Live})
def v2_live() -> Reply:
    """Open Inference Protocol V2 liveness."""
    return jsonify(live=True)


@bp.get("/v2/health/ready", responses={200: V2Ready, 503: ErrorResponse})
def v2_ready() -> Reply:
    """Open Inference Protocol V2 readiness."""
    state().model()
    return jsonify(ready=True)


@bp.get(
    "/v2/models/<string:name>",
    responses={200: V2ModelMetadata, 404: ErrorResponse, 503: ErrorResponse},
)
def v2_model(path: ModelPath) -> Reply:
    """Open Inference Protocol V2 model metadata."""
    name = path.name
    if (missing := unknown_model(name)) is not None:
        return missing
    info = state().model().info
    return jsonify(
        name=name,
        versions=[info.version],
        platform="tensorflow_savedmodel" if info.variant == SAVEDMODEL else "tensorflow_lite",
        inputs=[INPUT_SCHEMA],
        outputs=[OUTPUT_SCHEMA],
    )


@bp.get(
    "/v2/models/<string:name>/ready",
    responses={200: V2ModelReady, 404: ErrorResponse, 503: ErrorResponse},
)
def v2_model_ready(path: ModelPath) -> Reply:
    """Open Inference Protocol V2 model readiness."""
    name = path.name
    if (missing := unknown_model(name)) is not None:
        return missing
    state().model()
    return jsonify(name=name, ready=True)


def reload_source(model_uri: str | None, configured: str, body: ReloadRequest) -> str:
    """What a reload may load: the configured source, or a version/alias of the same model.

    Args:
        model_uri: ``MODEL_URI``, if set.
        configured: The configured source (``MODEL_URI`` or ``MODEL_DIR``).
        body: The request.

    Returns:
        The source to load.

    Raises:
        ValueError: If the request asks for something this service may not load.
    """
    if body.version and body.alias:
        raise ValueError("give a version or an alias, not both")
    if not (body.version or body.alias):
        return configured
    if not model_uri or not model_uri.startswith("models:/"):
        raise ValueError(
            "this service serves a directory: update it and reload with an empty body; "
            "version and alias need MODEL_URI=models:/NAME@ALIAS"
        )
    name = model_uri.removeprefix("models:/").split("@", 1)[0].split("/", 1)[0]
    return f"models:/{name}/{body.version}" if body.version else f"models:/{name}@{body.alias}"


@bp.post(
    "/admin/reload",
    security=[{"admin_key": []}],
    responses={
        200: ReloadResponse,
        401: ErrorResponse,
        404: ErrorResponse,
        409: ErrorResponse,
        415: ErrorResponse,
        422: ErrorResponse,
    },
)
def reload(body: ReloadRequest) -> Reply:
    """Load a new model (or the configured source again) in every worker, without downtime.

    The model is loaded and warmed up here first; if that fails it is refused (409) and the
    current model keeps serving.
    """
    service = state()
    watcher: ReloadWatcher = current_app.extensions[RELOAD]
    try:
        source = reload_source(service.settings.model_uri, service.settings.model_source, body)
    except ValueError as err:
        return error_response(422, "invalid_request", str(err))
    try:
        model = watcher.apply(source)
    except ModelLoadError as err:
        # The reason can name paths on this host: it goes to the log, not to the client.
        log.error("reload refused", extra={"fields": {"reason": str(err)}})
        serving = service.holder.current
        version = serving.info.version if serving else "none"
        return error_response(
            409, "model_refused", f"model failed to load or warm up; still serving {version}"
        )
    watcher.generation = write_control(service.settings.state_dir, source)
    watcher.lagging = None
    return jsonify(status="reloaded", model_version=model.info.version)
