"""The team setup: ``mlflow server`` on PostgreSQL with artifacts in S3, changed by env vars only.

PostgreSQL is a throwaway cluster of the distribution's server; S3 is ``moto_server``. The
pipeline, the registry CLI, the service and ``mnist registry reproduce`` run against them with
nothing but ``MLFLOW_TRACKING_URI`` set (clients never see the database or the bucket: the
server proxies artifacts).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from mnist_contracts.model import content_version
from tests.support import PROJECT_ROOT, mnist
from tests.support.project_repo import (
    attempt,
    commit_all,
    mlflow_query,
    registry_state,
    run,
    set_params,
    stages_run,
)
from tests.support.servers import S3, Postgres, mlflow_server, postgres_server, s3_server

pytestmark = [
    pytest.mark.slow,
    pytest.mark.postgres,
    pytest.mark.s3,
    pytest.mark.xdist_group("team-mlflow"),
]


@dataclass
class Team:
    url: str
    s3: S3
    db: Postgres


@pytest.fixture(scope="module")
def team(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Team]:
    """PostgreSQL, S3 and an ``mlflow server`` on both, for this module: its own bucket (without
    auth, as a team's server reaches its store) and a database the tests stop and start."""
    work = tmp_path_factory.mktemp("team")
    with s3_server(work, bucket="mlflow-team", auth=False) as s3, postgres_server() as db:
        server_env = {**s3.env(), "MLFLOW_S3_ENDPOINT_URL": s3.endpoint}
        artifacts = f"s3://{s3.bucket}/artifacts"
        with mlflow_server(work / "mlflow", db.uri, artifacts, server_env) as url:
            yield Team(url, s3, db)


# A failing call should fail within seconds in a test, not after MLflow's minutes of retries.
FAST_FAIL = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "0"}


def registry(repo: Path, url: str, *args: str) -> str:
    return run(mnist("registry", *args), repo,
               MLFLOW_TRACKING_URI=url)  # fmt: skip


def served(url: str, tmp: Path) -> dict[str, object]:
    """The service, in its own process, configured by environment variables only."""
    program = (
        "import json; from app import create_app, lifecycle\n"
        "app = create_app(); lifecycle.start(app); c = app.test_client()\n"
        "p = c.post('/predict', json={'images': [[[0] * 28] * 28]})\n"
        "print(json.dumps({'status': p.status_code, 'metadata': c.get('/metadata').json}))\n"
        "lifecycle.stop(app)"
    )
    out = run(
        [sys.executable, "-c", program], PROJECT_ROOT, stdout_only=True,
        MLFLOW_TRACKING_URI=url, MODEL_URI="models:/mnist-classifier@production",
        PREDICTION_LOG=str(tmp / "predictions.db"), STATE_DIR=str(tmp / "state"),
        PYTHONPATH=str(PROJECT_ROOT),
    )  # fmt: skip
    return dict(json.loads(out.splitlines()[-1]))


def test_pipeline_registry_and_service_on_postgres_and_s3(
    repo: Path, team: Team, tmp_path: Path
) -> None:
    # The tiny model passes a gate set for it; a second one may be a little worse.
    set_params(repo, register={"min_accuracy": 0.0, "tolerance": 1.0})
    run(["git", "commit", "-qam", "gate for a tiny model"], repo)
    output = run(["dvc", "repro"], repo, MLFLOW_TRACKING_URI=team.url)
    assert stages_run(output)[-1] == "register"
    assert not (repo / "mlflow.db").exists()  # nothing went to the embedded store
    first_model = content_version(repo / "models/mnist")
    first_bytes = (repo / "models/mnist/variables/variables.data-00000-of-00001").read_bytes()
    assert registry_state(repo, team.url) == {
        "versions": 1, "aliases": {"candidate": "1", "production": "1"},
    }  # fmt: skip

    set_params(repo, train={"epochs": 2})
    run(["git", "commit", "-qam", "two epochs"], repo)
    run(["dvc", "repro"], repo, MLFLOW_TRACKING_URI=team.url)
    assert registry_state(repo, team.url)["aliases"] == {
        "candidate": "2", "production": "2", "previous": "1",
    }  # fmt: skip
    assert "rolled back from v2 to v1" in registry(repo, team.url, "rollback")

    # The runs and their artifacts are in the server's stores: PostgreSQL rows, S3 objects.
    keys = [o["Key"] for o in team.s3.client().list_objects_v2(Bucket=team.s3.bucket)["Contents"]]
    assert any(k.endswith("variables.data-00000-of-00001") for k in keys)
    runs = mlflow_query(
        repo,
        "e = c.get_experiment_by_name('mnist-classifier')\n"
        "print(len(c.search_runs([e.experiment_id])))",
        team.url,
    )
    assert runs == "2"

    # Another process loads what production is, by alias, through the server.
    loaded = mlflow_query(
        repo,
        "import numpy as np\n"
        "m = mlflow.pyfunc.load_model('models:/mnist-classifier@production')\n"
        "print(m.predict(np.zeros((2, 28, 28), np.uint8)).shape)\n"
        "from mnist_contracts.registered import download_saved_model\n"
        "from mnist_contracts.model import content_version\n"
        "print(content_version(download_saved_model('models:/mnist-classifier@production')))",
        team.url,
    )
    assert loaded.splitlines() == ["(2, 10)", first_model]
    service = served(team.url, tmp_path)
    assert service["status"] == 200
    metadata = service["metadata"]
    assert metadata["source"] == "models:/mnist-classifier@production"  # type: ignore[index]
    # One identity whatever the source: the digest; the registry's version (after the rollback)
    # and alias are labels beside it.
    assert metadata["model_version"] == first_model  # type: ignore[index]
    assert metadata["registry_version"] == "1"  # type: ignore[index]
    assert metadata["alias"] == "production"  # type: ignore[index]

    # Version 1 rebuilds from its commit in a worktree: all three digests agree.
    out = registry(repo, team.url, "reproduce", "1")
    assert out.startswith("mnist-classifier v1: the rebuild from its commit matches")
    assert out.count(first_model) == 3

    # Replace the stored model's weights with another model's: the artifact is named.
    [weights] = [k for k in keys if k.endswith("variables.data-00000-of-00001")
                 and first_bytes == team.s3.client().get_object(
                     Bucket=team.s3.bucket, Key=k)["Body"].read()]  # fmt: skip
    other = (repo / "models/mnist/variables/variables.data-00000-of-00001").read_bytes()
    assert other != first_bytes
    team.s3.client().put_object(Bucket=team.s3.bucket, Key=weights, Body=other)
    result = attempt(
        mnist("registry", "reproduce", "1"), repo,
        MLFLOW_TRACKING_URI=team.url,
    )  # fmt: skip
    assert result.returncode == 1
    assert "mnist-classifier v1: digests differ: artifact" in result.stdout


def test_database_down_is_one_line_and_the_same_command_works_after(repo: Path, team: Team) -> None:
    env = {"MLFLOW_TRACKING_URI": team.url, **FAST_FAIL}
    team.db.stop()
    try:
        result = attempt(mnist("registry", "list"),
                         repo, **env)  # fmt: skip
        assert result.returncode == 2
        assert "Traceback" not in result.stderr
        assert result.stderr.startswith("mnist registry list: error: ")
        assert result.stderr.count("\n") == 1

        # A pipeline run that reaches MLflow while the database is down stops with one line.
        pipeline = attempt(["dvc", "repro"], repo, **env)
        assert pipeline.returncode != 0
        assert "Traceback" not in pipeline.stderr
        assert "train: error: MLflow " in pipeline.stderr
    finally:
        team.db.start()
    registry(repo, team.url, "list")
    output = run(["dvc", "repro"], repo, MLFLOW_TRACKING_URI=team.url)
    assert "train" in stages_run(output)  # the failed run left nothing DVC would skip


def test_a_study_lives_in_the_team_database_and_resumes_there(
    repo_after_repro: Path, team: Team
) -> None:
    """``OPTUNA_STORAGE`` names the team's PostgreSQL: the trials, the resume and the report's
    storage (shown without credentials) are there, and nothing goes to a local ``optuna.db``."""
    import psycopg

    repo = repo_after_repro
    with psycopg.connect(team.db.uri, autocommit=True) as connection:
        connection.execute("CREATE DATABASE optuna")  # Optuna and MLflow both use alembic_version
    # A password in the URL (the server trusts loopback): the report must not show it.
    password = "unused"  # noqa: S105  # pragma: allowlist secret
    storage = f"postgresql+psycopg://mlflow:{password}@127.0.0.1:{team.db.port}/optuna"
    space = {"train.learning_rate": {"low": 0.001, "high": 0.01, "log": True}}
    study = {"study": "team", "trials": 1, "fixed": {"train.epochs": 1}, "space": space}
    (repo / "tune.yaml").write_text(json.dumps(study))
    commit_all(repo, "a one-trial study")
    run(mnist("tune"), repo, OPTUNA_STORAGE=storage, MLFLOW_TRACKING_URI=team.url)
    # Resumed: a second trial in the same study.
    run(mnist("tune"), repo, OPTUNA_STORAGE=storage, MLFLOW_TRACKING_URI=team.url)

    report = json.loads((repo / "reports/tune.json").read_text())
    assert [t["state"] for t in report["trials"]] == ["COMPLETE", "COMPLETE"], report["trials"]
    assert report["storage"] == f"postgresql+psycopg://127.0.0.1:{team.db.port}/optuna"
    assert not (repo / "optuna.db").exists()
    with psycopg.connect(team.db.uri.rsplit("/", 1)[0] + "/optuna") as connection:
        stored = connection.execute("SELECT count(*) FROM trials").fetchone()
    assert stored == (2,)
    trials = mlflow_query(
        repo,
        "e = c.get_experiment_by_name('mnist-classifier')\n"
        "print(len(c.search_runs([e.experiment_id], \"tags.`optuna.study` = 'team'\")))",
        team.url,
    )
    assert trials == "3"  # the study's run and one run per trial, on the team server
