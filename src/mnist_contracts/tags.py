"""Names of the tags that MLflow runs and registered model versions carry."""

from __future__ import annotations

# The model's identity (:func:`mnist_contracts.model.content_version`) and its params' digest.
DIGEST_TAG = "model.digest"
PARAMS_DIGEST_TAG = "model.params_digest"
# Test metrics on a registered version: ``test.accuracy``, ``test.loss``, ``test.f1_macro``.
METRIC_PREFIX = "test."
ACCURACY_TAG = METRIC_PREFIX + "accuracy"
GIT_COMMIT_TAG = "git.commit"
GIT_DIRTY_TAG = "git.dirty"
PROMOTABLE_TAG = "registry.promotable"  # false: an experiment or PR run, never production
RUN_ID_TAG = "run_id"
DVC_MODEL_MD5_TAG = "dvc.model_md5"
DVC_EXP_NAME_TAG = "dvc.exp_name"
DVC_BASELINE_TAG = "dvc.baseline"
# A run opened by a later stage because the store never saw ``train`` run for this model.
RESTORED_TAG = "mirror.restored"
