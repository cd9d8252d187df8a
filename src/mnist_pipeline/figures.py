"""Figures written the one reproducible way: laid out, PNG without a timestamp, atomically.

The evaluate stage's plots are DVC outputs, so the same figure must give the same bytes:
matplotlib's PNG carries a ``Software`` text chunk naming its version unless told not to.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
from matplotlib.figure import Figure

from mnist_pipeline.atomic import atomic_path


def save_png(fig: Figure, path: Path, dpi: int) -> None:
    """Lay out ``fig``, write it to ``path`` as a PNG (atomically) and close it.

    Args:
        fig: The figure.
        path: Destination PNG; a failure leaves no half-written file.
        dpi: Resolution; with the figure's size it fixes the image's pixels.
    """
    fig.tight_layout()
    with atomic_path(path) as tmp, tmp.open("wb") as fh:
        fig.savefig(fh, format="png", dpi=dpi, metadata={"Software": None})
    plt.close(fig)
