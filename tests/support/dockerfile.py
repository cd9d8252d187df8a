"""The Dockerfile read as instructions (dockerfile-parse), not searched as text."""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass
from pathlib import Path

from dockerfile_parse import DockerfileParser


@dataclass(frozen=True)
class Instruction:
    """One instruction: its keyword and its value, comments and continuations resolved."""

    keyword: str
    value: str


def stages(path: Path) -> dict[str, list[Instruction]]:
    """The instructions of each build stage, by stage name (``AS name``).

    A stage built ``FROM`` an earlier stage starts with that stage's instructions, as Docker
    carries its ENV, USER, HEALTHCHECK and ENTRYPOINT over.
    """
    found: dict[str, list[Instruction]] = {}
    current: list[Instruction] | None = None
    for item in DockerfileParser(str(path)).structure:
        keyword, value = item["instruction"], item["value"]
        if keyword == "FROM":
            words = value.split()
            name = words[-1] if len(words) >= 3 and words[-2].upper() == "AS" else str(len(found))
            base = words[0] if words else ""
            current = found.setdefault(name, list(found.get(base, [])))
        elif keyword != "COMMENT" and current is not None:
            current.append(Instruction(keyword, value))
    return found


def env(instructions: list[Instruction]) -> dict[str, str]:
    """The ``ENV`` variables a stage sets (``KEY=value`` form)."""
    values: dict[str, str] = {}
    for i in instructions:
        if i.keyword == "ENV":
            for word in shlex.split(i.value):
                key, _, value = word.partition("=")
                values[key] = value
    return values


def last(instructions: list[Instruction], keyword: str) -> str | None:
    """The value of the stage's last ``keyword`` instruction (the one that takes effect)."""
    values = [i.value for i in instructions if i.keyword == keyword]
    return values[-1] if values else None


def exec_form(value: str | None) -> list[str] | None:
    """A JSON (exec form) instruction value as a list, or None."""
    try:
        parsed = json.loads(value or "")
    except ValueError:
        return None
    return parsed if isinstance(parsed, list) else None


def context_copies(instructions: list[Instruction]) -> list[tuple[list[str], str]]:
    """``COPY`` instructions from the build context (no ``--from``): ``(sources, destination)``."""
    copies = []
    for i in instructions:
        if i.keyword != "COPY":
            continue
        words = shlex.split(i.value)
        if any(w.startswith("--from=") for w in words):
            continue
        paths = [w for w in words if not w.startswith("--")]
        copies.append((paths[:-1], paths[-1]))
    return copies
