"""Fuzz every operation in the generated OpenAPI document: no 5xx, responses match the schema."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from app import create_app
from app.settings import Settings
from tests.service.conftest import export_tiny_model

pytestmark = pytest.mark.slow

# Built at collection time: schemathesis generates one test per operation from the document.
_TMP = Path(tempfile.mkdtemp(prefix="mnist-fuzz-"))
_APP = create_app(
    Settings(
        model_dir=export_tiny_model(_TMP / "model", seed=3),
        prediction_log=_TMP / "predictions.db",
        state_dir=_TMP / "state",
        max_images=8,
    )
)
schema = schemathesis.openapi.from_wsgi("/openapi/openapi.json", _APP)


@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_api_conforms(case: schemathesis.Case) -> None:
    # Every check but "schema-valid request accepted": two rules are stated in prose, not in the
    # schema (pixel range and integrality depend on `encoding`; any bytes are schema-valid
    # "binary" but most are not a PNG/JPEG). Those requests must get a 422, and do.
    case.call_and_validate(excluded_checks=[positive_data_acceptance])
