r"""Pin a kustomize overlay's images to what CI pushed: registry path, commit tag and digest.

The deploy workflow runs it before ``kubectl apply -k``; a person can too, to deploy a given
commit by hand::

    python scripts/pin_images.py kubernetes/overlays/staging --registry ghcr.io/acme/mnist \\
        --commit 3f1c...(40 hex) --digest mnist-api=sha256:... --digest mnist-monitor=sha256:...

Every image the overlay names must get a digest: a pin by tag alone can move under a running
deployment, and ``kubectl rollout undo`` then cannot bring the old image back. Exit 2 with one
line on a bad argument; the file is only rewritten when every pin is valid.
"""

from __future__ import annotations

import argparse
import itertools
import re
import sys
from pathlib import Path

import yaml

COMMIT = re.compile(r"^[0-9a-f]{40}$")
DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
# A registry path as OCI distribution allows it: lower case only (GitHub's owner/repo may not be).
REGISTRY = re.compile(r"^[a-z0-9.-]+(:[0-9]+)?(/[a-z0-9._-]+)*$")


class PinError(ValueError):
    """A pin that cannot be applied; the message is the one line the user sees."""


def pin(text: str, registry: str, commit: str, digests: dict[str, str]) -> str:
    """The overlay's ``kustomization.yaml`` with every image pinned.

    Args:
        text: The overlay's kustomization.yaml.
        registry: Where CI pushed the images, e.g. ``ghcr.io/acme/mnist`` (lower case).
        commit: The full commit the images were built from (their tag).
        digests: The pushed digest of each image, by the name the base uses (``mnist-api``).

    Returns:
        The rewritten file: its leading comment kept, the images pinned.

    Raises:
        PinError: A malformed argument, or an image of the overlay without a digest.
    """
    if not REGISTRY.match(registry):
        raise PinError(f"registry {registry!r} is not a lower-case registry path (OCI names are)")
    if not COMMIT.match(commit):
        raise PinError(f"commit {commit!r} is not a full 40-character git commit")
    for name, digest in digests.items():
        if not DIGEST.match(digest):
            raise PinError(f"digest of {name} {digest!r} is not sha256:<64 hex>")
    document = yaml.safe_load(text)
    images = document.get("images") or []
    named = {image["name"] for image in images}
    if unknown := sorted(set(digests) - named):
        raise PinError(f"the overlay has no image {', '.join(unknown)} (it has {sorted(named)})")
    if missing := sorted(named - set(digests)):
        raise PinError(f"no --digest for {', '.join(missing)}: every image is pinned by digest")
    for image in images:
        image.update(
            newName=f"{registry}/{image['name']}", newTag=commit, digest=digests[image["name"]]
        )
    lines = text.splitlines(keepends=True)
    header = "".join(itertools.takewhile(lambda line: line.startswith("#"), lines))
    return header + yaml.safe_dump(document, sort_keys=False)


def main(argv: list[str] | None = None) -> int:
    """Pin the overlay named on the command line; exit 2 with one line on a bad argument."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("overlay", type=Path, help="an overlay directory (kustomization.yaml)")
    parser.add_argument("--registry", required=True, help="e.g. ghcr.io/acme/mnist (lower case)")
    parser.add_argument("--commit", required=True, help="the images' commit tag (40 hex)")
    parser.add_argument("--digest", action="append", default=[], metavar="NAME=sha256:...",
                        help="an image's pushed digest; one per image of the overlay")  # fmt: skip
    args = parser.parse_args(argv)
    path = args.overlay / "kustomization.yaml"
    try:
        if not path.is_file():
            raise PinError(f"no {path}: name an overlay, e.g. kubernetes/overlays/staging")
        digests = dict(d.split("=", 1) for d in args.digest if "=" in d)
        if len(digests) != len(args.digest):
            raise PinError("--digest takes NAME=sha256:<64 hex>, e.g. mnist-api=sha256:...")
        pinned = pin(path.read_text(), args.registry, args.commit, digests)
    except PinError as err:
        print(f"pin-images: {err}", file=sys.stderr)
        return 2
    path.write_text(pinned)
    print(f"pin-images: {path}: {', '.join(sorted(digests))} at {args.commit[:12]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
