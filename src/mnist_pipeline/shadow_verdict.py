"""The shadow verdict: may the candidate replace production, on the evidence of live inputs?

The pairs (production class, candidate class) come from the shadow consumer
(``mnist shadow``), which runs the candidate on the stream's inputs in its own process,
or, without a stream, from replaying the last inputs of the embedded log. :func:`compare` turns
them into agreement, the flip matrix and both models' accuracy on labelled events;
:meth:`ShadowResult.verdict` applies ``register.shadow_min_events`` and
``register.shadow_max_disagreement``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from mnist_contracts.event_store import LogError
from mnist_contracts.event_store.redis_stream import Keys, RedisEvents
from mnist_contracts.event_store.sqlite import SqliteEvents
from mnist_contracts.registered import CandidateError, ModelFunction
from mnist_contracts.registered import load_candidate as load_registered_candidate
from mnist_pipeline.errors import PipelineError

Candidate = ModelFunction  # the model in shadow: its serve function and identity digest


def load_candidate(source: str) -> Candidate:
    """Load a candidate (see :func:`mnist_contracts.registered.load_candidate`).

    Raises:
        PipelineError: If it cannot be loaded.
    """
    try:
        return load_registered_candidate(source)
    except CandidateError as err:
        raise PipelineError(str(err)) from None


@dataclass(frozen=True)
class ShadowResult:
    """How a candidate answered the inputs production answered."""

    production_version: str
    candidate_version: str
    events: int
    agree: int
    flips: npt.NDArray[np.int64]  # [production class, candidate class] counts
    labelled: int
    production_correct: int
    candidate_correct: int

    @property
    def disagreement(self) -> float:
        """Share of events where the two classes differ."""
        return 1.0 - self.agree / self.events if self.events else 0.0

    def verdict(self, min_events: int, max_disagreement: float) -> tuple[bool, str]:
        """Whether the candidate may be promoted on this evidence, and why."""
        if self.events < min_events:
            return False, (
                f"blocked: {self.events} shadow events, at least {min_events} needed "
                "(register.shadow_min_events)"
            )
        if self.disagreement > max_disagreement:
            return False, (
                f"blocked: disagrees with production on {self.disagreement:.2%} of inputs, "
                f"more than {max_disagreement:.2%} (register.shadow_max_disagreement)"
            )
        return True, (
            f"passes: {self.events} events, disagreement {self.disagreement:.2%} "
            f"<= {max_disagreement:.2%}"
        )

    def accuracy(self, correct: int) -> float | None:
        """Accuracy on the labelled events (None without labels)."""
        return correct / self.labelled if self.labelled else None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "production_version": self.production_version,
            "candidate_version": self.candidate_version,
            "events": self.events,
            "agreement": round(1.0 - self.disagreement, 6),
            "disagreement": round(self.disagreement, 6),
            "flips": {
                f"{p}->{c}": int(self.flips[p, c])
                for p, c in zip(*np.nonzero(self.flips), strict=True)
                if p != c
            },
            "labelled": self.labelled,
            "production_accuracy": self.accuracy(self.production_correct),
            "candidate_accuracy": self.accuracy(self.candidate_correct),
        }

    def lines(self) -> list[str]:
        """A readable report: agreement, accuracies and the flip matrix."""

        def pct(value: float | None) -> str:
            return "-" if value is None else f"{value:.2%}"

        out = [
            f"production {self.production_version} vs candidate {self.candidate_version}",
            f"events {self.events}, agreement {pct(1.0 - self.disagreement)}, "
            f"labelled {self.labelled}: production accuracy "
            f"{pct(self.accuracy(self.production_correct))}, candidate accuracy "
            f"{pct(self.accuracy(self.candidate_correct))}",
            "flip matrix (rows: production class, columns: candidate class):",
            "     " + "".join(f"{c:>6}" for c in range(10)),
        ]
        out += [f"{p:>4} " + "".join(f"{int(n):>6}" for n in row)
                for p, row in enumerate(self.flips)]  # fmt: skip
        return out


def compare(
    production_version: str,
    candidate_version: str,
    pairs: list[tuple[str, int, int]],
    labels: dict[str, int],
) -> ShadowResult:
    """Agreement, flips and accuracies of ``(event id, production class, candidate class)``."""
    flips = np.zeros((10, 10), np.int64)
    labelled = production_correct = candidate_correct = 0
    for event_id, production, candidate in pairs:
        flips[production, candidate] += 1
        if event_id in labels:
            labelled += 1
            production_correct += int(production == labels[event_id])
            candidate_correct += int(candidate == labels[event_id])
    return ShadowResult(
        production_version, candidate_version, len(pairs), int(np.trace(flips)), flips,
        labelled, production_correct, candidate_correct,
    )  # fmt: skip


def replay(log: Path, candidate: Candidate, last: int) -> ShadowResult:
    """Without a stream: run the candidate on the last ``last`` inputs of the embedded log."""
    try:
        window = SqliteEvents(log).window(last)
    except LogError as err:
        raise PipelineError(str(err)) from None
    ids = [i for i, has in zip(window.event_ids, window.has_image, strict=True) if has]
    production = window.predicted_class[window.has_image].tolist()
    answers = candidate.predict(window.images).argmax(axis=1).tolist() if ids else []
    pairs = list(zip(ids, production, answers, strict=True))
    return compare(window.model_version, candidate.version, pairs, window.labels)


def from_stream(url: str, prefix: str, candidate_version: str | None, last: int) -> ShadowResult:
    """The latest ``last`` answers ``mnist shadow`` wrote for one candidate, deduplicated."""
    events = RedisEvents(url, prefix)
    stream = Keys(prefix).shadow
    by_candidate: dict[str, dict[str, tuple[str, int, int]]] = {}
    order: list[str] = []
    for fields in events.entries(stream):
        version = fields[b"cv"].decode()
        if candidate_version is not None and version != candidate_version:
            continue
        if version not in by_candidate:
            by_candidate[version], order = {}, [*order, version]
        pairs = by_candidate[version]
        event_id = fields[b"id"].decode()
        if event_id not in pairs and len(pairs) < last:
            pairs[event_id] = (fields[b"pv"].decode(), int(fields[b"pc"]), int(fields[b"cc"]))
    if not order:
        wanted = f" of candidate {candidate_version}" if candidate_version else ""
        raise PipelineError(f"{url} {stream}: no shadow answers{wanted}; is mnist shadow running?")
    version = order[0]  # newest first: the candidate that answered last
    rows = by_candidate[version]
    productions = {p for p, _, _ in rows.values()}
    found = [(i, p, c) for i, (_, p, c) in rows.items()]
    return compare(",".join(sorted(productions)), version, found, events.labels())
