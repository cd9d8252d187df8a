"""Fuzz every operation in the generated OpenAPI document: no 5xx, responses match the schema.

Collecting this module costs an app factory call and nothing more: the document comes from an
app that is built but not started (nothing exported, loaded or trained, no thread). The
cases run against a real app with a model, swapped in by a fixture when the test runs.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from app import create_app
from app.settings import Settings
from tests.support.serving import started

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("fuzzed-app")]


def _settings(directory: Path, model_dir: Path) -> Settings:
    return Settings(
        model_dir=model_dir,
        prediction_log=directory / "predictions.db",
        state_dir=directory / "state",
        max_images=8,
        # The admin route on (as an operator would run it), so its documented 401 is checked.
        admin_key="fuzz-admin",  # pragma: allowlist secret
    )


class _Target:
    """The WSGI app schemathesis calls; which Flask app answers is decided when tests run."""

    def __init__(self) -> None:
        scratch = Path(tempfile.mkdtemp(prefix="mnist-fuzz-doc-"))
        self.app: Any = create_app(_settings(scratch, scratch / "no-model"))  # not started

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        return self.app(environ, start_response)  # type: ignore[no-any-return]


_TARGET = _Target()
schema = schemathesis.openapi.from_wsgi("/openapi/openapi.json", _TARGET)


@pytest.fixture(scope="module", autouse=True)
def serving_app(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """A real app with a model answers the fuzzed requests."""
    with started(_settings(tmp_path_factory.mktemp("fuzz"), tiny_model)) as app:
        _TARGET.app = app
        yield


def test_the_fuzzed_app_has_a_model() -> None:
    with _TARGET.app.test_client() as client:
        assert client.get("/health/ready").status_code == 200


@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_api_conforms(case: schemathesis.Case) -> None:
    # Every check but "schema-valid request accepted": two rules are stated in prose, not in the
    # schema (pixel range and integrality depend on `encoding`; any bytes are schema-valid
    # "binary" but most are not a PNG/JPEG). Those requests must get a 422, and do.
    case.call_and_validate(excluded_checks=[positive_data_acceptance])
