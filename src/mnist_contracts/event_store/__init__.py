"""The event store: every answered prediction and its true label, in SQLite or on Redis.

- :mod:`.schema`: what an event is (ids, the window read back, errors, the sink and source
  interfaces), whichever store holds it;
- :mod:`.writer`: the one batching writer thread both stores' sinks use;
- :mod:`.sqlite`: the embedded prediction log (the default), its schema, writer and reader;
- :mod:`.redis_stream`: the Redis stream (``EVENTS_URL``), its layout, writer and reader.

The service writes through a sink (``app.factory`` picks it from the settings); the monitor,
``mnist collect``, the shadow consumer and the shadow report read through :func:`open_events`.
"""

from __future__ import annotations

from pathlib import Path

from mnist_contracts.event_store.schema import (
    DEFAULT_FEEDBACK_TTL_S,
    DEFAULT_MAXLEN,
    DEFAULT_PREFIX,
    EventSink,
    EventSource,
    EventStoreError,
    LabelExistsError,
    LabelledEvent,
    LogError,
    UnknownEventError,
    Window,
    carries_image,
    is_stream_url,
    new_event_id,
    random_hex,
)

__all__ = [
    "DEFAULT_FEEDBACK_TTL_S",
    "DEFAULT_MAXLEN",
    "DEFAULT_PREFIX",
    "EventSink",
    "EventSource",
    "EventStoreError",
    "LabelExistsError",
    "LabelledEvent",
    "LogError",
    "UnknownEventError",
    "Window",
    "carries_image",
    "is_stream_url",
    "new_event_id",
    "open_events",
    "random_hex",
]


def open_events(where: str | Path, prefix: str = DEFAULT_PREFIX) -> EventSource:
    """The event source ``where`` names: a ``redis://`` URL, else the SQLite log's path."""
    if is_stream_url(where):
        from mnist_contracts.event_store.redis_stream import RedisEvents

        return RedisEvents(str(where), prefix)
    from mnist_contracts.event_store.sqlite import SqliteEvents

    return SqliteEvents(Path(where))
