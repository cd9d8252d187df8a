"""Model Registry operations: versions, aliases, the quality gate, promote and rollback.

Aliases, MLflow 3 style (registry stages are deprecated): ``candidate`` is the newest version
that passed the gate; ``production`` the one that serves; ``previous`` the production version
before it, so a rollback is one step. Used by the ``register`` stage and the ``mnist registry``
CLI.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from mnist_contracts.tags import DIGEST_TAG
from mnist_pipeline.errors import PipelineError

CANDIDATE = "candidate"
PRODUCTION = "production"
PREVIOUS = "previous"


@dataclass(frozen=True)
class GateDecision:
    """Whether a version may serve production, why, and the numbers compared."""

    passed: bool
    reason: str
    accuracy: float
    min_accuracy: float
    tolerance: float
    production_version: str | None
    production_accuracy: float | None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)


def decide(
    accuracy: float,
    min_accuracy: float,
    tolerance: float,
    production_version: str | None = None,
    production_accuracy: float | None = None,
) -> GateDecision:
    """Apply the quality gate.

    A model passes when its test accuracy is at least ``min_accuracy`` and not worse than the
    current production model's by more than ``tolerance``.

    Args:
        accuracy: The candidate's test accuracy.
        min_accuracy: The absolute floor.
        tolerance: Allowed shortfall against production.
        production_version: Current production version, if any.
        production_accuracy: Its test accuracy, if known.

    Returns:
        The decision with its reason.
    """

    def decision(passed: bool, reason: str) -> GateDecision:
        return GateDecision(
            passed,
            reason,
            accuracy,
            min_accuracy,
            tolerance,
            production_version,
            production_accuracy,
        )

    if accuracy < min_accuracy:
        return decision(
            False, f"test accuracy {accuracy:.4f} is below register.min_accuracy {min_accuracy:.4f}"
        )
    if production_accuracy is not None and accuracy < production_accuracy - tolerance:
        return decision(
            False,
            f"test accuracy {accuracy:.4f} is worse than production v{production_version} "
            f"({production_accuracy:.4f}) by more than register.tolerance {tolerance}",
        )
    if production_accuracy is None:
        reason = f"test accuracy {accuracy:.4f} >= {min_accuracy:.4f}; no production model yet"
    else:
        reason = (
            f"test accuracy {accuracy:.4f} >= {min_accuracy:.4f} and within {tolerance} of "
            f"production v{production_version} ({production_accuracy:.4f})"
        )
    return decision(True, reason)


@dataclass(frozen=True)
class VersionInfo:
    """One registered version as the CLI lists it."""

    version: str
    aliases: list[str]
    run_id: str
    tags: dict[str, str]


class Registry:
    """The registered model ``name`` in the current tracking store."""

    def __init__(self, name: str, client: MlflowClient | None = None) -> None:
        self.name = name
        self.client = client or MlflowClient()

    def versions(self) -> list[VersionInfo]:
        """All versions, newest first, with their aliases and tags."""
        try:
            found = self.client.search_model_versions(f"name='{self.name}'")
            # Version search does not fill in aliases on every store; the model itself has them.
            aliases = self.client.get_registered_model(self.name).aliases if found else {}
        except MlflowException as err:
            raise PipelineError(f"cannot list versions of {self.name}: {err.message}") from None
        by_version: dict[str, list[str]] = {}
        for alias, version in aliases.items():
            by_version.setdefault(str(version), []).append(alias)
        infos = [
            VersionInfo(
                str(v.version),
                sorted(by_version.get(str(v.version), [])),
                v.run_id or "",
                dict(v.tags),
            )
            for v in found
        ]
        return sorted(infos, key=lambda v: int(v.version), reverse=True)

    def version_for_model(self, digest: str, run_id: str) -> str | None:
        """The version that already holds the model ``digest``, if any (idempotent registration).

        A version logged from ``run_id`` counts too: registering may have stopped after the
        version was created and before it was tagged.

        Args:
            digest: The model's content digest (tag ``model.digest``).
            run_id: The MLflow run that produced the model.

        Returns:
            The oldest such version, or None.
        """
        matches = [
            v.version
            for v in self.versions()
            if v.tags.get(DIGEST_TAG) == digest or v.run_id == run_id
        ]
        return min(matches, key=int) if matches else None

    def describe(self, version: str, description: str) -> None:
        """Set the version's description (the model card, shown by the MLflow UI)."""
        self.client.update_model_version(self.name, str(version), description=description)

    def alias(self, alias: str) -> VersionInfo | None:
        """The version holding ``alias``, or None."""
        return next((v for v in self.versions() if alias in v.aliases), None)

    def get(self, version: str) -> VersionInfo:
        """The version ``version``.

        Raises:
            PipelineError: If it does not exist (listing the ones that do).
        """
        known = self.versions()
        for info in known:
            if info.version == str(version):
                return info
        listed = ", ".join(v.version for v in reversed(known)) or "none"
        raise PipelineError(
            f"version {version} of {self.name} does not exist (registered versions: {listed})"
        )

    def set_alias(self, alias: str, version: str) -> None:
        """Point ``alias`` at ``version``."""
        self.client.set_registered_model_alias(self.name, alias, str(version))

    def promote(self, version: str) -> VersionInfo | None:
        """Make ``version`` production; the old production version becomes ``previous``.

        Args:
            version: The version to promote.

        Returns:
            The version that was production before, if any.
        """
        self.get(version)
        old = self.alias(PRODUCTION)
        if old is not None and old.version == str(version):
            return None
        if old is not None:
            self.set_alias(PREVIOUS, old.version)
        self.set_alias(PRODUCTION, version)
        return old

    def rollback(self) -> tuple[str, str]:
        """Move ``production`` back to ``previous``; the rolled-back version becomes ``previous``.

        Rolling back twice therefore restores the original state.

        Returns:
            ``(from_version, to_version)``.

        Raises:
            PipelineError: If there is no previous version to roll back to.
        """
        previous = self.alias(PREVIOUS)
        current = self.alias(PRODUCTION)
        if previous is None or current is None:
            raise PipelineError(
                f"{self.name} has no previous production version to roll back to; "
                "use `mnist registry promote VERSION`"
            )
        self.set_alias(PRODUCTION, previous.version)
        self.set_alias(PREVIOUS, current.version)
        return current.version, previous.version
