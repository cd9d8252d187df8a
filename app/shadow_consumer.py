"""The shadow consumer: the candidate model answers live inputs beside production, unseen.

``mnist shadow --events redis://HOST:6379/0`` (``make shadow``; the service image runs it as
``python -m mnist_pipeline.commands shadow``).

A consumer of the prediction stream (``EVENTS_URL``) in its own process, so the serving workers
never hold a second model. It reads the stream in a Redis consumer group named for the
candidate (several replicas share the work, a restarted one first finishes what it had claimed,
and a new candidate starts from every event the stream still holds), runs
``models:/<register.model_name>@candidate`` on each event that carries its input, and writes
``(event id, production class, candidate class)`` to ``{prefix}:shadow``.
``mnist registry shadow-report`` reads them; ``promote`` can require a passing report.

It needs what the service needs (TensorFlow, the contracts, redis, MLflow's client), nothing of
the training code, so the service image runs it too. Exit status: 0 (``--once``: the stream is
drained), 1 with a one-line error.
"""

from __future__ import annotations

import logging
import os
import socket
from typing import Any, cast

import numpy as np
import redis

from mnist_contracts.event_store import DEFAULT_MAXLEN, is_stream_url
from mnist_contracts.event_store.redis_stream import Keys, ensure_group
from mnist_contracts.model import IMAGE_BYTES, IMAGE_SHAPE
from mnist_contracts.registered import CandidateError, load_candidate
from mnist_contracts.registered import ModelFunction as Candidate


class ShadowError(Exception):
    """A problem the operator can fix (no stream given, the candidate does not load)."""


log = logging.getLogger(__name__)

GROUP_PREFIX = "shadow"  # one consumer group per candidate: each sees every held event
Entry = tuple[bytes, dict[bytes, bytes]]


def group(candidate: Candidate) -> str:
    """The consumer group of a candidate: replicas share it, a new candidate starts afresh."""
    return f"{GROUP_PREFIX}:{candidate.version}"


def answer(client: redis.Redis, keys: Keys, candidate: Candidate, entries: list[Entry],
           maxlen: int) -> int:  # fmt: skip
    """Run the candidate on the entries that carry an input; record and acknowledge them all.

    Returns:
        How many events the candidate answered.
    """
    usable = [(sid, f) for sid, f in entries if len(f.get(b"img", b"")) == IMAGE_BYTES]
    pipe = client.pipeline(transaction=False)
    if usable:
        images = np.frombuffer(b"".join(f[b"img"] for _, f in usable), np.uint8)
        probs = candidate.predict(images.reshape(-1, *IMAGE_SHAPE))
        for (_, fields), p in zip(usable, probs, strict=True):
            record: dict[Any, Any] = {
                "id": fields[b"id"], "pv": fields[b"v"], "pc": fields[b"c"],
                "cv": candidate.version, "cc": int(p.argmax()), "cp": repr(float(p.max())),
            }  # fmt: skip
            pipe.xadd(keys.shadow, record, maxlen=maxlen)
    pipe.xack(keys.predictions, group(candidate), *[sid for sid, _ in entries])
    pipe.execute()
    return len(usable)


def consume(
    url: str, prefix: str, candidate: Candidate, *, once: bool, batch: int = 256,
    block_ms: int = 2000, maxlen: int = DEFAULT_MAXLEN,
) -> int:  # fmt: skip
    """Evaluate the candidate on the stream until stopped (or, ``once``, until it is drained).

    Returns:
        How many events the candidate answered.
    """
    client = redis.Redis.from_url(url, socket_timeout=30)
    keys = Keys(prefix)
    consumer = f"{socket.gethostname()}-{os.getpid()}"
    ensure_group(client, keys.predictions, group(candidate))
    answered = 0
    start = "0"  # first what this consumer claimed before (none for a new one), then new ones
    while True:
        reply = cast(
            "list[tuple[bytes, list[Entry]]]",
            client.xreadgroup(
                group(candidate),
                consumer,
                {keys.predictions: start},
                count=batch,
                block=None if start == "0" else block_ms,
            ),
        )
        entries = [e for _, chunk in reply or [] for e in chunk]
        if entries:
            answered += answer(client, keys, candidate, entries, maxlen)
            log.info("shadow answered", extra={"fields": {"events": len(entries),
                                                          "total": answered}})  # fmt: skip
            continue
        if start == "0":
            start = ">"
            continue
        if once:
            return answered


def run_consumer(events: str | None, prefix: str, candidate_uri: str, once: bool) -> int:
    """Load the candidate and answer every event of the stream with it (``mnist shadow``).

    Args:
        events: The stream's ``redis://`` URL.
        prefix: The stream's key prefix.
        candidate_uri: A registered model URI or an exported directory.
        once: Stop when the stream is drained.

    Returns:
        How many events the candidate answered.

    Raises:
        ShadowError: On a missing stream or a candidate that does not load.
    """
    if not events or not is_stream_url(events):
        raise ShadowError(
            "the shadow consumer reads the event stream: pass --events redis://HOST:PORT/DB or "
            "set EVENTS_URL (without a stream, `mnist registry shadow-report` replays the log)"
        )
    try:
        candidate = load_candidate(candidate_uri)
    except CandidateError as err:
        raise ShadowError(str(err)) from None
    log.info("shadow evaluation", extra={"fields": {"candidate": candidate_uri,
                                                    "version": candidate.version}})  # fmt: skip
    try:
        answered = consume(events, prefix, candidate, once=once)
    except redis.RedisError as err:
        raise ShadowError(f"{events}: {err}") from None
    log.info("shadow consumer stopped", extra={"fields": {"answered": answered}})
    return answered
