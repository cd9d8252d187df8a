"""``mnist remote``: one S3-compatible DVC remote for data, models and the run-cache."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mnist_pipeline.commands._base import one_line_errors

app = typer.Typer(
    help="The DVC remote (S3 or S3-compatible): configure it, push to it, pull from it. "
    "Credentials come from AWS_* in the environment or .env, never from a file written here.",
    epilog="Example: mnist remote configure s3://my-bucket/mnist && mnist remote push",
    no_args_is_help=True,
)
RootOption = Annotated[Path, typer.Option("--root", help="the repository")]


@app.command(
    epilog="Example: mnist remote configure s3://my-bucket/mnist --endpoint http://minio:9000"
)
def configure(
    url: Annotated[str, typer.Argument(help="s3://BUCKET/PATH")],
    endpoint: Annotated[
        str | None, typer.Option(help="the S3 API's URL (MinIO, Ceph, ...)", show_default="AWS")
    ] = None,
    name: Annotated[str, typer.Option(help="the remote's name")] = "storage",
    root: RootOption = Path(),
) -> None:
    """Write the default remote to .dvc/config.local (never to the committed .dvc/config)."""
    with one_line_errors("remote configure"):
        from mnist_pipeline.ops.remote import configure as write

        remote = write(root, url, endpoint, name)
    print(f"DVC default {remote} written to .dvc/config.local; credentials come from AWS_*")


@app.command(epilog="Example: mnist remote push")
def push(root: RootOption = Path()) -> None:
    """Push data, models and the run-cache (with its git-tracked outputs' objects)."""
    with one_line_errors("remote push"):
        from mnist_pipeline.ops.remote import push as send

        print(f"pushed to {send(root)}")


@app.command(epilog="Example: mnist remote pull   (then dvc repro restores every stage)")
def pull(root: RootOption = Path()) -> None:
    """Pull data, models and the run-cache."""
    with one_line_errors("remote pull"):
        from mnist_pipeline.ops.remote import pull as fetch

        print(f"pulled from {fetch(root)}")
