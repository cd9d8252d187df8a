"""The exported model's identity: a digest of its weights, with no TensorFlow import.

The same weights give the same identity wherever the files came from (trained here, restored
from DVC's run-cache, pulled from a remote or downloaded from the registry), so MLflow runs and
registered versions are found by it, and registering is idempotent by content.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

MODEL_DIR = Path("models/mnist")
# Tag on MLflow runs and registered versions: the identity of the model they hold.
DIGEST_TAG = "model.digest"


def content_version(path: Path = MODEL_DIR) -> str:
    """The model's identity as the service reports it: a hash of its variables.

    Must match ``app.model._content_version``: the monitor selects the logged predictions whose
    version equals the reference's.

    Args:
        path: The SavedModel directory.

    Returns:
        ``sha256:`` and the first 12 hex digits of the variables files' hash.
    """
    digest = hashlib.sha256()
    for file in sorted((path / "variables").glob("*")):
        digest.update(file.read_bytes())
    return "sha256:" + digest.hexdigest()[:12]
