"""``mnist registry``: the registered versions, promotion, rollback, rebuilds and shadow reports.

List versions, promote one, roll production back, rebuild one, or say how a candidate did in
shadow on live traffic. For the people who run production. Uses the same tracking store as the
pipeline (``MLFLOW_TRACKING_URI``, ``.env``, or the embedded store under the repository root).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from mlflow.exceptions import MlflowException

from mnist_contracts.event_store import is_stream_url
from mnist_contracts.tags import DIGEST_TAG
from mnist_pipeline import tracking
from mnist_pipeline.errors import PipelineError
from mnist_pipeline.params import PARAMS_FILE, RegisterParams, load_params
from mnist_pipeline.registry import CANDIDATE, PRODUCTION, Registry
from mnist_pipeline.shadow_verdict import ShadowResult, from_stream, load_candidate, replay

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Events:
    """Where the shadow evidence is: the stream's URL or the embedded log, and how much of it."""

    source: str
    prefix: str
    last: int


def shadow_result(registry: Registry, version: str, events: Events) -> ShadowResult:
    """The shadow evidence for ``version``: ``mnist shadow``'s answers, or a replay of the log.

    Args:
        registry: The registered model.
        version: The registered version in shadow.
        events: Where to read the live inputs.

    Returns:
        The evidence.
    """
    info = registry.get(version)
    if is_stream_url(events.source):
        digest = info.tags.get(DIGEST_TAG)
        return from_stream(events.source, events.prefix, digest, events.last)
    candidate = load_candidate(f"models:/{registry.name}/{version}")
    return replay(Path(events.source), candidate, events.last)


def format_versions(registry: Registry) -> str:
    """A plain table of the registered versions, newest first.

    Args:
        registry: The registered model.

    Returns:
        The table, or a line saying there are none.
    """
    versions = registry.versions()
    if not versions:
        return f"{registry.name}: no registered versions"
    lines = [f"{'version':>7}  {'aliases':<30} {'accuracy':>8}  {'git commit':<10}  run"]
    for v in versions:
        lines.append(
            f"{v.version:>7}  {','.join(v.aliases) or '-':<30} "
            f"{v.tags.get('test.accuracy', '-'):>8}  {v.tags.get('git.commit', '-')[:10]:<10}  "
            f"{v.run_id}"
        )
    return "\n".join(lines)


def register_params() -> RegisterParams:
    """The ``register`` params of ``params.yaml`` in the working directory, or their defaults.

    Returns:
        The params.
    """
    return load_params(PARAMS_FILE).register if PARAMS_FILE.exists() else RegisterParams()


def candidate_version(registry: Registry) -> str:
    """The version with the candidate alias.

    Args:
        registry: The registered model.

    Returns:
        Its version.

    Raises:
        PipelineError: No version has the alias.
    """
    candidate = registry.alias(CANDIDATE)
    if candidate is None:
        raise PipelineError(
            f"{registry.name}: no version has the {CANDIDATE} alias; pass --version"
        )
    return candidate.version


def open_registry(name: str | None) -> Registry:
    """The registered model ``name`` (default ``register.model_name``) in the tracking store.

    Args:
        name: The registered model's name, or None for the params' default.

    Returns:
        The registry of that model, connected.
    """
    tracking.connect()
    return Registry(name or register_params().model_name)


@contextlib.contextmanager
def named_errors(registry: Registry) -> Iterator[None]:
    """MLflow's refusals as one line that names the model."""
    try:
        yield
    except MlflowException as err:
        raise PipelineError(f"{registry.name}: {err.message}") from None


def promote(registry: Registry, version: str, events: Events) -> list[str]:
    """Make ``version`` production, after a passing shadow report when the gate asks for one.

    Args:
        registry: The registered model.
        version: The version to promote.
        events: Where the shadow evidence is.

    Returns:
        What was done, line by line.

    Raises:
        PipelineError: The shadow evaluation did not pass.
    """
    name, params, said = registry.name, register_params(), []
    with named_errors(registry):
        if params.shadow_min_events > 0:
            result = shadow_result(registry, version, events)
            passed, reason = result.verdict(
                params.shadow_min_events, params.shadow_max_disagreement
            )
            if not passed:
                raise PipelineError(
                    f"{name} v{version} not promoted: shadow evaluation {reason}; "
                    "run mnist shadow longer or lower register.shadow_min_events"
                )
            said.append(f"{name} v{version} shadow evaluation {reason}")
        old = registry.promote(version)
    before = f" (was v{old.version}, now alias previous)" if old else ""
    return [*said, f"{name}: v{version} is {PRODUCTION}{before}"]
