"""How often does mnist monitor say "drift", for clean and for shifted live traffic?

For each kind of traffic (official test digits as they are, inverted, rotated 30-45 degrees,
thickened, noisy, only 1s and 7s) it draws 20 seeded samples of ``monitor.window`` images, runs
the exported model and the same drift report as ``mnist monitor`` against ``data/reference``, and
writes the detection rate per kind to ``reports/drift_detection.{json,md}``.

Usage: ``python scripts/drift_detection_rate.py`` after ``make repro``. Not part of the tests.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
from scipy import ndimage

from mnist_pipeline import saved_model
from mnist_pipeline.dataset import load_split
from mnist_pipeline.drift_features import drift_frame
from mnist_pipeline.markdown import table
from mnist_pipeline.ops.monitor import load_reference, run_report, summarise
from mnist_pipeline.params import load_params

ROOT = Path(__file__).resolve().parents[1]
SEEDS = 20

Shift = Callable[[np.ndarray, np.random.Generator], np.ndarray]


def rotate(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Rotate each image by 30-45 degrees, either way."""
    angles = rng.uniform(30, 45, len(images)) * rng.choice([-1, 1], len(images))
    return np.stack(
        [ndimage.rotate(i, a, reshape=False, order=1) for i, a in zip(images, angles, strict=True)]
    )


KINDS: dict[str, Shift] = {
    "in-distribution": lambda x, _: x,
    "inverted": lambda x, _: 255 - x,
    "rotated 30-45 degrees": rotate,
    "thickened (3x3 dilation)": lambda x, _: np.stack(
        [ndimage.grey_dilation(i, size=(3, 3)) for i in x]
    ),
    "noisy (sigma 70)": lambda x, rng: np.clip(x + rng.normal(0, 70, x.shape), 0, 255).astype(
        np.uint8
    ),
}


def main() -> None:
    """Run every kind x seed and write the detection rates."""
    params = load_params(ROOT / "params.yaml").monitor
    reference, _ = load_reference(ROOT / "data/reference")
    test = load_split("test", ROOT / "data/prepared")
    predict = saved_model.load(ROOT / "models/mnist")
    skewed_pool = test.x[np.isin(test.y, [1, 7])]
    results = {}
    for kind, shift in [*KINDS.items(), ("only 1s and 7s", None)]:
        detected = 0
        named: list[str] = []
        for seed in range(SEEDS):
            rng = np.random.default_rng(seed)
            pool = skewed_pool if shift is None else test.x
            images = pool[rng.choice(len(pool), params.window, replace=False)]
            if shift is not None:
                images = shift(images, rng)
            probs = predict(images)
            frame = drift_frame(images, probs.argmax(axis=1), probs.max(axis=1))
            summary = summarise(json.loads(run_report(frame, reference, params).json()))
            detected += int(summary["drift"])
            named += [c for c, v in summary["columns"].items() if v["drifted"]]
        top = sorted(set(named), key=lambda c: -named.count(c))[:4]
        results[kind] = {"detection_rate": detected / SEEDS, "most_named": top}
        print(f"{kind:28s} {detected}/{SEEDS} drift  {top}", flush=True)
    report = {"samples_per_kind": SEEDS, "window": params.window, "results": results}
    (ROOT / "reports/drift_detection.json").write_text(json.dumps(report, indent=2) + "\n")
    text = table(
        (f"traffic ({params.window} images, {SEEDS} seeded samples)", "said drift",
         "columns named most"),
        [(k, f"{v['detection_rate']:.0%}", ", ".join(v["most_named"])) for k, v in results.items()],
    )  # fmt: skip
    (ROOT / "reports/drift_detection.md").write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
