"""Prediction endpoints: the native JSON API, image uploads, TF Serving and Open Inference V2."""

from __future__ import annotations

from typing import Any

import numpy as np
from flask import Response, jsonify, request
from flask_openapi3.blueprint import APIBlueprint
from flask_openapi3.models.tag import Tag
from pydantic import BaseModel

from app.errors import error_response, unknown_model
from app.schemas import (
    ErrorResponse,
    FeedbackRequest,
    FeedbackResponse,
    ImageForm,
    ModelPath,
    PredictRequest,
    PredictResponse,
    TFServingRequest,
    TFServingResponse,
    V2InferRequest,
    V2InferResponse,
    to_uint8,
)
from app.state import state
from mnist_contracts.event_store import EventStoreError, LabelExistsError, UnknownEventError
from mnist_contracts.image_input import ImageInputError, image_to_mnist
from mnist_contracts.model import IMAGE_SHAPE

predict_tag = Tag(name="predict", description="Classify digits")
compat_tag = Tag(name="compatibility", description="TF Serving and Open Inference Protocol V2")
# Tags per route, not per blueprint: a blueprint's tags are added to every route's own, and the
# compatibility routes were listed twice (under "predict" and "compatibility").
bp = APIBlueprint("predict", __name__)
Responses = dict[str | int, type[BaseModel] | dict[Any, Any] | None]
ERRORS: Responses = dict.fromkeys((401, 413, 415, 422, 503), ErrorResponse)
COMPAT_ERRORS: Responses = {**ERRORS, 404: ErrorResponse}

Reply = Response
EVENT_IDS_HEADER = "X-Event-IDs"


def _too_many(count: int, field: str) -> Reply | None:
    limit = state().settings.max_images
    if count > limit:
        return error_response(
            422, "invalid_request", f"too many images: {count} > {limit}",
            [{"field": field, "message": f"at most {limit} images per request"}],
        )  # fmt: skip
    return None


def _answer(images: np.ndarray) -> Reply:
    answer = state().classify(images)
    # Converted to Python numbers once for the whole batch, not element by element.
    rounded = np.round(answer.probs.astype(np.float64), 6).tolist()
    predictions = [
        {"predicted_class": c, "confidence": conf, "probabilities": p, "event_id": event_id}
        for c, conf, p, event_id in zip(
            answer.classes, answer.confidences, rounded, answer.event_ids, strict=True
        )
    ]
    info = answer.model.info
    return jsonify(predictions=predictions, model_name=info.name, model_version=info.version)


@bp.post("/predict", tags=[predict_tag], responses={200: PredictResponse, **ERRORS})
def predict(body: PredictRequest) -> Reply:
    """Classify one image or a batch of 28x28 images.

    Send `image` (28x28) or `images` (N x 28 x 28). Pixels are integers 0-255 (`encoding:
    "uint8"`, the default) or numbers 0.0-1.0 (`encoding: "float"`), white digit on black.
    """
    field = "image" if body.image is not None else "images"
    if (refused := _too_many(len(body.images or [None]), field)) is not None:
        return refused
    try:
        images = body.pixels()
    except ValueError as err:
        return error_response(
            422, "invalid_request", f"{field} {err}", [{"field": field, "message": str(err)}]
        )
    return _answer(images)


@bp.post("/predict/image", tags=[predict_tag], responses={200: PredictResponse, **ERRORS})
def predict_image(form: ImageForm) -> Reply:
    """Classify a PNG or JPEG photo or scan of one digit (any size, either polarity).

    The image is turned into an MNIST-like input the way MNIST was made: grayscale, inverted if
    the background is light, cropped to the ink, fitted into 20x20, centred by centre of mass.
    """
    upload = request.files.get("file")
    data = upload.read() if upload is not None else b""
    try:
        image = image_to_mnist(data, state().settings.max_image_pixels)
    except ImageInputError as err:
        return error_response(
            422, "invalid_image", str(err), [{"field": "file", "message": str(err)}]
        )
    return _answer(image[np.newaxis])


@bp.post(
    "/v1/models/<string:name>:predict",
    tags=[compat_tag],
    responses={200: TFServingResponse, **COMPAT_ERRORS},
)
def tfserving_predict(path: ModelPath, body: TFServingRequest) -> Reply:
    """TensorFlow Serving REST `predict` (row format): `{"instances": [28x28, ...]}`, uint8."""
    if (missing := unknown_model(path.name)) is not None:
        return missing
    if (refused := _too_many(len(body.instances), "instances")) is not None:
        return refused
    try:
        images = to_uint8(body.instances, "uint8", 3)
    except ValueError as err:
        return error_response(422, "invalid_request", f"instances {err}",
                              [{"field": "instances", "message": str(err)}])  # fmt: skip
    answer = state().classify(images)
    # TF Serving's body has no room for ids: they ride in a header, in instance order.
    reply = jsonify(predictions=answer.probs.round(6).tolist())
    reply.headers[EVENT_IDS_HEADER] = ",".join(answer.event_ids)
    return reply


V2_TYPES = {"UINT8": "uint8", "FP32": "float", "FP64": "float", "INT32": "uint8", "INT64": "uint8"}


@bp.post(
    "/v2/models/<string:name>/infer",
    tags=[compat_tag],
    responses={200: V2InferResponse, **COMPAT_ERRORS},
)
def v2_infer(path: ModelPath, body: V2InferRequest) -> Reply:
    """Open Inference Protocol V2 `infer` (JSON tensors). UINT8 0-255, or FP32 0.0-1.0."""
    if (missing := unknown_model(path.name)) is not None:
        return missing
    tensor = body.inputs[0]
    encoding = V2_TYPES.get(tensor.datatype)
    if encoding is None or len(tensor.shape) != 3 or tensor.shape[1:] != list(IMAGE_SHAPE):
        message = "expects one input of shape [N,28,28], datatype UINT8 or FP32"
        return error_response(422, "invalid_request", message,
                              [{"field": "inputs.0", "message": message}])  # fmt: skip
    if (refused := _too_many(tensor.shape[0], "inputs.0.shape")) is not None:
        return refused
    try:
        flat = np.asarray(tensor.data, dtype=np.float64).reshape(tensor.shape)
        images = to_uint8(flat, encoding, 3)  # type: ignore[arg-type]
    except ValueError as err:
        return error_response(422, "invalid_request", f"inputs.0.data {err}",
                              [{"field": "inputs.0.data", "message": str(err)}])  # fmt: skip
    answer = state().classify(images)
    probs, model, ids = answer.probs, answer.model, answer.event_ids
    output = {
        "name": "probabilities",
        "shape": list(probs.shape),
        "datatype": "FP32",
        "data": probs.ravel().round(6).tolist(),
    }
    return jsonify(
        model_name=model.info.name,
        model_version=model.info.version,
        id=body.id,
        outputs=[output],
        parameters={"event_ids": ids},
    )


@bp.post("/feedback", tags=[predict_tag], responses={
    200: FeedbackResponse, 404: ErrorResponse, 409: ErrorResponse, **ERRORS})  # fmt: skip
def feedback(body: FeedbackRequest) -> Reply:
    """Send the true label of an answered image, by the `event_id` its prediction returned.

    Any replica accepts it. An id no prediction returned (or one older than the stream keeps)
    is 404; a second label for the same image is 409.
    """
    sink = state().prediction_log
    try:
        predicted = sink.label(body.event_id, body.label)
    except UnknownEventError:
        return error_response(
            404, "unknown_event",
            f"no prediction has event_id {body.event_id}; send an id a prediction returned",
        )  # fmt: skip
    except LabelExistsError:
        return error_response(
            409, "label_exists", f"event {body.event_id} already has a label; labels are final"
        )
    except EventStoreError as err:
        return error_response(503, "events_unavailable", f"event store unavailable ({err}); retry")
    correct = predicted == body.label
    state().metrics.feedback.labels(str(correct).lower()).inc()
    return jsonify(
        event_id=body.event_id, label=body.label, predicted_class=predicted, correct=correct
    )
