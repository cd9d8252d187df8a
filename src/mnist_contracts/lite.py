"""The export's TFLite variants, run by LiteRT (``ai-edge-litert``) with no TensorFlow import.

The train stage writes two flatbuffers inside the exported SavedModel directory, beside the
variables they were converted from, so they travel (and are registered) with it:

* ``lite/tflite-float.tflite``: the same float32 graph;
* ``lite/tflite-int8.tflite``: dynamic-range int8 weights (about 4x smaller, activations float).

Both keep the contract ``uint8[N,28,28] -> float32[N,10]``. ``assets/model.json`` records each
file's sha256 next to the model's identity digest, so a variant is the *same model* (one digest)
with a variant label, and a file that does not match the record is refused.
"""

from __future__ import annotations

import hashlib
import json
import threading
from pathlib import Path
from typing import Literal, get_args

import numpy as np
import numpy.typing as npt

from mnist_contracts.model import (
    IDENTITY_FILE,
    IMAGE_SHAPE,
    ModelIdentity,
    NotAModelError,
    read_identity,
)

Variant = Literal["savedmodel", "tflite-float", "tflite-int8"]
VARIANTS: tuple[Variant, ...] = get_args(Variant)
SAVEDMODEL: Variant = "savedmodel"
LITE_VARIANTS: tuple[Variant, ...] = ("tflite-float", "tflite-int8")
LITE_DIR = Path("lite")


def lite_file(directory: Path, variant: Variant) -> Path:
    """Where ``variant``'s flatbuffer sits inside an export."""
    return directory / LITE_DIR / f"{variant}.tflite"


def file_digest(path: Path) -> str:
    """``sha256:`` and the full hex digest of a file's bytes."""
    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


def lite_digests(directory: Path) -> dict[str, str]:
    """The sha256 of every TFLite variant present in an export (for ``assets/model.json``)."""
    return {v: file_digest(lite_file(directory, v)) for v in LITE_VARIANTS
            if lite_file(directory, v).is_file()}  # fmt: skip


def read_variant_identity(directory: Path, variant: Variant) -> ModelIdentity:
    """The identity of the model a variant of the export in ``directory`` serves.

    For the SavedModel it is computed from the variables (:func:`read_identity`). For a TFLite
    variant the file must match the sha256 recorded at export; the variables may be absent (the
    slim image copies only what it serves), and when present they must match the record too.

    Raises:
        NotAModelError: If the variant's file is missing or is not the one the export recorded.
    """
    if variant == SAVEDMODEL:
        return read_identity(directory)
    path = lite_file(directory, variant)
    if not path.is_file():
        raise NotAModelError(f"{path}: no {variant} model; re-export it (dvc repro train)")
    try:
        record = json.loads((directory / IDENTITY_FILE).read_text(encoding="utf-8"))
        expected = record["lite"][variant]
        digest, params = str(record["digest"]), str(record.get("params_digest", "unknown"))
    except (OSError, ValueError, KeyError, TypeError):
        raise NotAModelError(
            f"{directory / IDENTITY_FILE}: no record of {variant}; re-export the model"
        ) from None
    if file_digest(path) != expected:
        raise NotAModelError(f"{path}: not the file this export recorded; re-export the model")
    if (directory / "variables").is_dir() and read_identity(directory).digest != digest:
        raise NotAModelError(f"{directory}: the variables do not match {IDENTITY_FILE}")
    return ModelIdentity(digest, params)


class LiteModel:
    """A TFLite variant as a thread-safe numpy callable ``uint8[N,28,28] -> float32[N,10]``.

    An interpreter is not thread-safe: each calling thread gets its own, built lazily from the
    one copy of the flatbuffer, and resized only when its batch size changes.
    """

    def __init__(self, path: Path, threads: int = 1) -> None:
        """Read the flatbuffer and check that it loads.

        Raises:
            NotAModelError: If the file is missing or is not a model LiteRT can run.
        """
        if not path.is_file():
            raise NotAModelError(f"{path}: no TFLite model")
        self._content = path.read_bytes()
        self._threads = threads
        self._local = threading.local()
        self.size_bytes = len(self._content)
        try:
            self._interpreter()
        except (ValueError, RuntimeError) as err:
            raise NotAModelError(f"{path}: LiteRT cannot load it ({err})") from None

    def _interpreter(self) -> tuple[object, int, int]:
        """This thread's interpreter and its input and output tensor indices."""
        found: tuple[object, int, int] | None = getattr(self._local, "interpreter", None)
        if found is None:
            from ai_edge_litert.interpreter import Interpreter

            interpreter = Interpreter(model_content=self._content, num_threads=self._threads)
            found = (
                interpreter,
                interpreter.get_input_details()[0]["index"],
                interpreter.get_output_details()[0]["index"],
            )
            self._local.interpreter, self._local.batch = found, -1
        return found

    def __call__(self, images: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
        """Class probabilities ``float32[N,10]`` for ``uint8[N,28,28]`` images."""
        interpreter, inp, out = self._interpreter()
        it = interpreter  # ai_edge_litert ships no type hints
        if len(images) != self._local.batch:
            it.resize_tensor_input(inp, [len(images), *IMAGE_SHAPE])  # type: ignore[attr-defined]
            it.allocate_tensors()  # type: ignore[attr-defined]
            self._local.batch = len(images)
        it.set_tensor(inp, np.ascontiguousarray(images, np.uint8))  # type: ignore[attr-defined]
        it.invoke()  # type: ignore[attr-defined]
        return np.asarray(it.get_tensor(out), np.float32)  # type: ignore[attr-defined]
