"""The contracts between the pipeline and the service, in one small package both import.

What a model is and how it is called (:mod:`.model`), where files live (:mod:`.paths`), the
names of registry and run tags (:mod:`.tags`), the event store (:mod:`.event_store`: the
prediction events, their SQLite and Redis stores), the drift report's keys (:mod:`.drift`) and how
settings are read (:mod:`.env_file`). It depends on numpy and the standard library (TensorFlow is
imported inside :func:`.model.load_serve`, which only processes that serve models call; redis and
tenacity only by the event store), so the serving image carries it as it is.
"""
