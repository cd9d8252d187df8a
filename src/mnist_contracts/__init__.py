"""The contracts between the pipeline and the service, in one small package both import.

What a model is and how it is called (:mod:`.model`), where files live (:mod:`.paths`), the
names of registry and run tags (:mod:`.tags`), the prediction log's schema (:mod:`.prediction_log`),
the drift report's keys (:mod:`.drift`) and how settings are read (:mod:`.settings`). It depends on
numpy and the standard library only (TensorFlow is imported inside :func:`.model.load_serve`, which
only processes that serve models call), so the serving image carries it as it is.
"""
