"""Request and response schemas; the OpenAPI document is generated from these.

Pixel rule: ``encoding: "uint8"`` (default) means integers 0-255; ``encoding: "float"`` means
numbers 0.0-1.0, scaled by 255 and rounded. Images are 28x28, white digit on black (MNIST
convention). Arrays are converted and checked with NumPy rather than element by element by
pydantic: a batch of 256 images is 200,704 numbers.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema, model_validator

from mnist_contracts.model import IMAGE_SHAPE

_ROW = {"type": "array", "items": {"type": "number"}, "minItems": 28, "maxItems": 28}
_IMAGE = {"type": "array", "items": _ROW, "minItems": 28, "maxItems": 28}
ImageJson = Annotated[list[Any], WithJsonSchema(_IMAGE)]
ImagesJson = Annotated[list[Any], WithJsonSchema({"type": "array", "items": _IMAGE, "minItems": 1})]
Encoding = Literal["uint8", "float"]


def to_uint8(value: object, encoding: Encoding, ndim: int) -> npt.NDArray[np.uint8]:
    """Convert nested lists of pixels to ``uint8``, refusing anything out of rule.

    Args:
        value: Nested lists (or an array).
        encoding: ``uint8`` (0-255 integers) or ``float`` (0-1).
        ndim: 2 for one image, 3 for a batch.

    Returns:
        ``uint8[28,28]`` or ``uint8[N,28,28]``.

    Raises:
        ValueError: With a message naming what is wrong.
    """
    try:
        array = np.asarray(value)
    except (ValueError, TypeError):
        array = np.asarray(None)  # ragged: refused below
    if array.dtype.kind not in "iuf":  # strings, booleans, nulls, ragged nesting
        raise ValueError("must be numbers in nested arrays of equal length")
    expected = "28x28" if ndim == 2 else "N x 28 x 28"
    if array.ndim != ndim or array.shape[-2:] != IMAGE_SHAPE or array.size == 0:
        raise ValueError(f"must be {expected}, got shape {list(array.shape)}")
    if encoding == "uint8" and array.dtype.kind in "iu":  # the common case: whole numbers
        if array.min() < 0 or array.max() > 255:
            raise ValueError('with encoding "uint8", values must be integers 0-255')
        return array.astype(np.uint8)
    array = array.astype(np.float64)
    if not np.all(np.isfinite(array)):
        raise ValueError("must not contain NaN or infinity")
    if encoding == "float":
        if array.min() < 0 or array.max() > 1:
            raise ValueError('with encoding "float", values must be within 0.0-1.0')
        array = np.rint(array * 255.0)
    elif array.min() < 0 or array.max() > 255 or not np.array_equal(array, np.rint(array)):
        raise ValueError('with encoding "uint8", values must be integers 0-255')
    return array.astype(np.uint8)


class PredictRequest(BaseModel):
    """One image (``image``) or a batch (``images``)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"image": [[0] * 28] * 28, "encoding": "uint8"}]},
    )

    image: ImageJson | None = Field(default=None, description="one 28x28 image")
    images: ImagesJson | None = Field(default=None, description="a batch of 28x28 images")
    encoding: Encoding = Field(default="uint8", description='"uint8": 0-255; "float": 0.0-1.0')

    @model_validator(mode="after")
    def _one_of(self) -> PredictRequest:
        if (self.image is None) == (self.images is None):
            raise ValueError("send exactly one of image or images")
        return self

    def pixels(self) -> npt.NDArray[np.uint8]:
        """The images as ``uint8[N,28,28]`` (raises ValueError naming the problem)."""
        if self.image is not None:
            return to_uint8(self.image, self.encoding, 2)[np.newaxis]
        return to_uint8(self.images or [], self.encoding, 3)


class Prediction(BaseModel):
    """The answer for one image."""

    predicted_class: int = Field(ge=0, le=9)
    confidence: float
    probabilities: list[float] = Field(min_length=10, max_length=10)
    event_id: str = Field(description="the server's id of this prediction; send it to /feedback")


class PredictResponse(BaseModel):
    """Answers in request order, and which model gave them."""

    predictions: list[Prediction]
    model_name: str
    model_version: str


class ErrorField(BaseModel):
    """One problem with the request."""

    field: str
    message: str


class ErrorResponse(BaseModel):
    """Every error the service returns has this shape."""

    error: str
    message: str
    fields: list[ErrorField] = Field(default_factory=list)
    request_id: str | None = None


class HealthResponse(BaseModel):
    """Liveness/readiness."""

    status: str
    model_version: str | None = None
    registry_version: str | None = None
    following: str | None = None
    refused: str | None = None
    event_store: str | None = Field(
        default=None, description="up, or down: answers go on, events are buffered, then counted"
    )


class MetadataResponse(BaseModel):
    """What the service serves."""

    model_name: str
    model_version: str
    variant: str = Field(description="savedmodel | tflite-float | tflite-int8: the runtime")
    params_digest: str
    registry_version: str | None
    alias: str | None
    git_commit: str
    source: str
    test_metrics: dict[str, float]
    load_seconds: float
    input: dict[str, Any]
    output: dict[str, Any]


class ImageForm(BaseModel):
    """A PNG or JPEG upload of a digit, any size, either polarity."""

    file: Any = Field(json_schema_extra={"type": "string", "format": "binary"})


class ReloadRequest(BaseModel):
    """Reload the configured source, or another version or alias of the configured model.

    Never an arbitrary path or URI: an empty body loads ``MODEL_DIR`` (or ``MODEL_URI``) again;
    ``version`` or ``alias`` need ``MODEL_URI=models:/NAME...`` and stay within model NAME.
    """

    model_config = ConfigDict(extra="forbid")
    version: str | None = Field(
        default=None, pattern=r"^[1-9][0-9]{0,8}$", description="a version of the served model"
    )
    alias: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z][A-Za-z0-9_-]{0,63}$",
        description="an alias of the served model, e.g. production",
    )


class ReloadResponse(BaseModel):
    """The outcome of a reload."""

    status: str
    model_version: str


class TFServingRequest(BaseModel):
    """TensorFlow Serving REST ``predict`` request (row format)."""

    instances: ImagesJson
    signature_name: str | None = None


class TFServingResponse(BaseModel):
    """TensorFlow Serving REST ``predict`` response."""

    predictions: list[list[float]]


class V2Tensor(BaseModel):
    """An Open Inference Protocol V2 tensor (JSON data, flat or nested)."""

    name: str
    shape: list[int]
    datatype: str
    data: list[Any]
    parameters: dict[str, Any] | None = None


class V2RequestedOutput(BaseModel):
    """An output the client asks for."""

    name: str
    parameters: dict[str, Any] | None = None


class V2InferRequest(BaseModel):
    """Open Inference Protocol V2 inference request."""

    id: str | None = None
    inputs: list[V2Tensor] = Field(min_length=1, max_length=1)
    outputs: list[V2RequestedOutput] | None = None
    parameters: dict[str, Any] | None = None


class V2InferResponse(BaseModel):
    """Open Inference Protocol V2 inference response."""

    model_name: str
    model_version: str
    id: str | None = None
    outputs: list[V2Tensor]
    parameters: dict[str, list[str]] = Field(
        default_factory=dict, description="event_ids: one per image, for /feedback"
    )


class FeedbackRequest(BaseModel):
    """The true label of one answered image."""

    model_config = ConfigDict(extra="forbid")

    event_id: str = Field(
        pattern=r"^[0-9a-f]{32}$", description="the event_id a prediction returned"
    )
    label: int = Field(ge=0, le=9, strict=True, description="the digit the image really shows")


class FeedbackResponse(BaseModel):
    """The label was recorded."""

    event_id: str
    label: int
    predicted_class: int
    correct: bool


class ModelPath(BaseModel):
    """The model name in compatibility routes (``mnist`` by default)."""

    name: str = Field(description="served model name")


class V2Live(BaseModel):
    """Open Inference Protocol V2 liveness."""

    live: bool


class V2Ready(BaseModel):
    """Open Inference Protocol V2 readiness."""

    ready: bool


class V2ModelReady(BaseModel):
    """Open Inference Protocol V2 model readiness."""

    name: str
    ready: bool


class V2TensorMetadata(BaseModel):
    """A tensor's name, datatype and shape (-1: any size)."""

    name: str
    datatype: str
    shape: list[int]


class V2ModelMetadata(BaseModel):
    """Open Inference Protocol V2 model metadata."""

    name: str
    versions: list[str]
    platform: str
    inputs: list[V2TensorMetadata]
    outputs: list[V2TensorMetadata]
