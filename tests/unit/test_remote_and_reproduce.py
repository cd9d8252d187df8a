"""The parts of ``mnist remote`` and ``mnist registry reproduce`` that need no server."""

from __future__ import annotations

from pathlib import Path

import pytest

from mnist_pipeline.cli import run_stage
from mnist_pipeline.errors import PipelineError
from mnist_pipeline.ops import remote
from mnist_pipeline.ops.reproduce import Digests
from tests.support import run_mnist

# What DVC 3.67 printed on this machine for each failure (moto on loopback, see test_remote).
DVC_SAID = {
    "no credentials": "ERROR: unexpected error - Unable to locate credentials\n\n"
    "Having any troubles? Hit us up at https://dvc.org/support, we are always happy to help!\n",
    "refused the credentials": "ERROR: unexpected error - Forbidden: An error occurred (403) "
    "when calling the HeadObject operation: Forbidden\n",
    "cannot be reached": "ERROR: failed to connect to s3 (dvc/store/files/md5) - Could not "
    'connect to the endpoint URL: "http://127.0.0.1:5598/dvc/store/files/md5"\n'
    "ERROR: failed to pull data from the cloud - 14 files failed to download\n",
    "stopped part-way": "WARNING: something\nERROR: failed to push data to the cloud - "
    "3 files failed to upload\n",
    "dropped the connection": "ERROR: unexpected error - Connection was closed before we "
    'received a valid response from endpoint URL: "http://127.0.0.1:51929/mnist-team/runs".\n',
    "bucket does not exist": "ERROR: unexpected error - NoSuchBucket: The specified bucket "
    "does not exist\n",
}


@pytest.mark.parametrize(("cause", "stderr"), DVC_SAID.items())
def test_dvc_failures_become_one_line_with_what_to_do(cause: str, stderr: str) -> None:
    line = remote.explain(stderr)
    assert cause in line
    assert "\n" not in line
    assert "(dvc: " in line
    assert "Having any troubles" not in line


def test_an_unknown_failure_still_says_what_dvc_said() -> None:
    assert remote.explain("ERROR: the moon is down\n") == "DVC failed (dvc: the moon is down)"


def test_configure_checks_url_and_endpoint_before_running_dvc(tmp_path: Path) -> None:
    with pytest.raises(PipelineError, match="is not s3://BUCKET/PATH"):
        remote.configure(tmp_path, "s3://", None)
    with pytest.raises(PipelineError, match="is not s3://BUCKET/PATH"):
        remote.configure(tmp_path, "gs://bucket/path", None)
    with pytest.raises(PipelineError, match="not an http:// or https:// URL"):
        remote.configure(tmp_path, "s3://bucket/path", "minio:9000")


def test_the_cli_reports_no_remote_as_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / ".dvc").mkdir()
    (tmp_path / ".dvc/config").write_text("[core]\n    analytics = false\n")
    assert run_mnist("remote", "pull", "--root", str(tmp_path)) == 2
    err = capsys.readouterr().err
    assert err == (
        "mnist remote pull: error: no DVC remote is configured: run make remote "
        "URL=s3://BUCKET/PATH [ENDPOINT=http://HOST:PORT] first\n"
    )


@pytest.mark.parametrize(
    ("recorded", "artifact", "rebuilt", "differing"),
    [
        ("a", "a", "a", []),
        ("a", "b", "a", ["artifact"]),
        ("a", "a", "b", ["rebuilt"]),
        ("b", "a", "a", ["recorded"]),
        ("a", "b", "c", ["recorded", "artifact", "rebuilt"]),
    ],
)
def test_the_digest_that_disagrees_is_named(
    recorded: str, artifact: str, rebuilt: str, differing: list[str]
) -> None:
    digests = Digests(recorded, artifact, rebuilt)
    assert digests.differing() == differing
    assert len(digests.lines()) == 3


def test_mlflow_errors_in_a_stage_are_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    from mlflow.exceptions import MlflowException

    def failing() -> None:
        raise MlflowException("API request to endpoint /api/2.0/mlflow/runs/create failed\nmore")

    with pytest.raises(SystemExit) as exit_info:
        run_stage(failing, "train")
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("train: error: MLflow request failed: API request to endpoint ")
    assert err.count("\n") == 1


def test_other_exceptions_in_a_stage_are_not_hidden() -> None:
    def failing() -> None:
        raise ValueError("a bug")

    with pytest.raises(ValueError, match="a bug"):
        run_stage(failing, "train")
