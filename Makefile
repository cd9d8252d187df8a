# The front door: `make repro` and `make test` work on a fresh machine with Python 3.11, git, make.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SPARK_STAMP := $(VENV)/.spark-installed
# uv installs into $(VIRTUAL_ENV), exported below.
UV = $(BIN)/uv pip
# Stages run `python -m ...`: the venv must come first on PATH, as after `source .venv/bin/activate`.
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
export VIRTUAL_ENV := $(CURDIR)/$(VENV)
export DVC_NO_ANALYTICS := 1
export PYTHONHASHSEED := 0
export TF_CPP_MIN_LOG_LEVEL := 2

.PHONY: help setup repro test test-fast lint format typecheck lock upgrade clean mlflow-ui serve bench-serving report bench monitor experiments candidates docs remote push pull bench-remote image bench-image bench-durability seeds tune shadow collect screenshot setup-spark train-distributed bench-distributed bench-score bench-tests test-tier stack stack-down bench-stack docs-site bench-disk

help:  ## List the targets.
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

# The venv with uv alone: what `make lock` needs (a new dependency in pyproject.toml is not in the
# lock yet, so a full setup would fail its check before the lock could be made).
$(BIN)/uv:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else "Python 3.11 is required: set PYTHON=/path/to/python3.11")'
	$(PYTHON) -m venv $(VENV)
	# uv's pip installs the lock exactly, in seconds where pip takes minutes (reports/bench_tests.json);
	# uv itself comes at the lock's version.
	$(BIN)/python -m pip install --quiet "$$(grep -E '^uv==' requirements.lock)"

$(STAMP): requirements.lock pyproject.toml $(BIN)/uv
	# --compile-bytecode writes the .pyc files at install (as pip does; uv does not by default):
	# every stage, dvc and test process imports them instead of compiling TensorFlow from source
	# each time (10 s -> 5 s an import where PYTHONDONTWRITEBYTECODE is set, as on the machines
	# this project is checked on).
	$(UV) install --quiet --compile-bytecode -r requirements.lock
	$(UV) install --quiet --no-deps --no-build-isolation -e .
	$(UV) check
	@touch $@

setup: $(STAMP)  ## Create .venv from requirements.lock (only when missing or outdated).

repro: setup  ## Run the DVC pipeline (fetch -> preprocess -> train -> evaluate).
	$(BIN)/dvc repro
	@$(BIN)/python -c 'import json; t = json.load(open("reports/metrics.json"))["test"]; print("test accuracy %(accuracy).4f  loss %(loss).4f  macro F1 %(f1_macro).4f  errors %(errors)d/%(count)d" % t)'

# DVC remote (S3 or any S3-compatible store). Credentials only from the environment (AWS_*).
URL ?=
ENDPOINT ?=
remote: setup  ## Point DVC at S3: make remote URL=s3://BUCKET/PATH [ENDPOINT=http://HOST:PORT].
	$(BIN)/mnist remote configure "$(URL)" $(if $(ENDPOINT),--endpoint "$(ENDPOINT)")

push: setup  ## Push data, models and the run-cache to the DVC remote (see `make remote`).
	$(BIN)/mnist remote push

pull: setup  ## Pull data, models and the run-cache from the DVC remote: no training needed.
	$(BIN)/mnist remote pull

BASE ?= main
report: setup  ## Markdown report of metrics/params/plots vs BASE (default main) in reports/pr/.
	$(BIN)/mnist report --base $(BASE) --out reports/pr

serve: setup  ## Serve the exported model with Gunicorn on http://127.0.0.1:8000 (2 workers).
	mkdir -p var/prometheus
	PROMETHEUS_MULTIPROC_DIR=$(CURDIR)/var/prometheus $(BIN)/gunicorn -c gunicorn.conf.py

monitor: setup  ## Drift report of the service's recent predictions vs the reference (exit 1 = drift).
	$(BIN)/mnist monitor

shadow: setup  ## Run the candidate model in shadow on the event stream (EVENTS_URL).
	$(BIN)/mnist shadow

collect: setup  ## Labelled live events into data/feedback (DVC-tracked) for preprocess.feedback.
	$(BIN)/mnist collect

WORKERS ?= 2
# Beside the graph, not a stage: TF_CONFIG (the cluster) is an input DVC cannot see. The chief
# writes models/mnist and reports/train as the train stage does; `dvc status` then shows train
# changed (`dvc commit train` keeps it, `dvc checkout` restores the graph's model).
train-distributed: setup  ## Train on WORKERS TensorFlow workers on loopback (MultiWorkerMirroredStrategy; needs data/prepared).
	$(BIN)/mnist train-distributed --workers $(WORKERS)

bench-distributed: setup  ## Step time of 1 vs WORKERS workers on this machine -> reports/bench_distributed.json (after make repro).
	$(BIN)/python scripts/bench_distributed.py --workers $(WORKERS)

bench-score: setup $(SPARK_STAMP)  ## Batch scoring images/s, local engine vs Spark local[2] -> reports/bench_score.json (after make repro).
	$(BIN)/python scripts/bench_score.py

bench: setup  ## Pipeline benchmark: one cold `dvc repro` of the whole graph, then a no-op one.
	$(BIN)/python scripts/bench_pipeline.py

bench-remote: setup  ## Remote benchmark: push/pull sizes and times, pull vs repro to a first prediction.
	$(BIN)/python scripts/bench_remote.py

experiments: setup  ## The seed's Runs 1-2 as queued DVC experiments, then Runs 3-4 (make candidates).
	$(BIN)/python scripts/experiments.py
	$(MAKE) candidates

TRIALS ?= 12
candidates: setup  ## Runs 3-4: the search, a ranking check, default vs tuned vs ensemble -> reports/candidates.json.
	$(BIN)/python -m mnist_pipeline.ops.candidates --trials $(TRIALS)

tune: setup  ## Optuna search over tune.yaml, each trial a DVC experiment -> reports/tune.json (resumes).
	$(BIN)/mnist tune

N ?= 5
seeds: setup  ## Seed noise: N queued experiments over `seed` -> reports/seeds.json (the report uses it).
	$(BIN)/mnist seeds --n $(N)

docs: setup  ## Render the README's and docs' generated blocks (reports, Makefile, settings, CLI).
	$(BIN)/python scripts/render_docs.py

docs-site: setup  ## Build the documentation site into site/ (MkDocs, strict: broken links and pages left out fail).
	$(BIN)/mkdocs build --strict

bench-disk: setup  ## Disk use of .venv and of data, models and the DVC cache -> reports/disk.json (after make repro).
	$(BIN)/python scripts/bench_disk.py

bench-serving: setup  ## Benchmark the service against `mlflow models serve` (needs wrk, a trained model).
	$(BIN)/python scripts/bench_serving.py

IMAGE ?= mnist-api:latest
MONITOR_IMAGE ?= mnist-monitor:latest
SLIM_IMAGE ?= mnist-api:slim
# Bake models/mnist in when it exists (after `make repro`); else the image needs MODEL_URI.
BAKE_MODEL ?= $(if $(wildcard models/mnist/saved_model.pb),true,false)
image: setup  ## Build the service, slim (LiteRT) and monitor images (model baked in when models/mnist exists).
	$(BIN)/python -m pip download --quiet --no-deps --only-binary=:all: -d docker/wheels \
	  -r requirements-serve.lock -r requirements-slim.lock -r requirements-monitor.lock \
	  -r requirements-mlflow.lock \
	  "$$(grep -E '^uv==' requirements.lock)" 2> >(grep -v "is ignored" >&2)
	# The classic builder builds every stage before the target: both builds get the same args.
	# The commit goes in as GIT_COMMIT (/metadata names it for a baked model) and in the OCI labels.
	base=$$(bash docker/base-image.sh) && commit=$$(git rev-parse HEAD 2>/dev/null || echo unknown) && \
	args="--build-arg PYTHON_IMAGE=$$base --build-arg BAKE_MODEL=$(BAKE_MODEL) --build-arg GIT_COMMIT=$$commit \
	  --label org.opencontainers.image.revision=$$commit \
	  --label org.opencontainers.image.source=$$(git remote get-url origin 2>/dev/null | sed "s|://[^@/]*@|://|" || echo local)" && \
	DOCKER_BUILDKIT=0 docker build --quiet $$args -t $(IMAGE) . && \
	DOCKER_BUILDKIT=0 docker build --quiet $$args --target monitor -t $(MONITOR_IMAGE) . && \
	DOCKER_BUILDKIT=0 docker build --quiet $$args --target slim -t $(SLIM_IMAGE) .

stack: setup  ## The whole system in Docker: .env, images, MLflow, the pipeline against it, api, monitor, alerts.
	bash docker/stack.sh up

V ?=
stack-down:  ## Stop and remove what make stack started; V=1 drops its volumes too (compose down -v).
	bash docker/stack.sh down $(if $(V),-v)

screenshot: setup  ## The draw-a-digit page with a digit drawn, for the README (needs Chromium, a trained model).
	$(BIN)/python scripts/screenshot_page.py

bench-image: setup  ## Image benchmark: size, what takes the space, ready time, worker memory.
	$(BIN)/python scripts/bench_image.py

bench-durability: setup  ## Durability benchmark: workers SIGKILLed under load vs the prediction log.
	$(BIN)/python scripts/bench_durability.py

mlflow-ui: setup  ## The MLflow UI on the embedded store (http://127.0.0.1:5000).
	$(BIN)/mlflow ui --backend-store-uri sqlite:///$(CURDIR)/mlflow.db --host 127.0.0.1 --port 5000

lint: setup  ## ruff check + format check + deptry (every imported package declared).
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/deptry .

format: setup  ## Apply ruff fixes and formatting.
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

typecheck: setup  ## mypy (strict) on src/.
	$(BIN)/mypy

$(SPARK_STAMP): requirements-spark.lock $(STAMP)
	$(UV) install --quiet --compile-bytecode -r requirements-spark.lock -c requirements.lock
	touch $@

setup-spark: $(SPARK_STAMP)  ## The optional Spark extra (mnist score --engine spark), from requirements-spark.lock.

# Two workers: much of the suite waits on subprocesses and servers, so one core's wait is the
# other's work. Tests that share a heavy fixture are one xdist_group and stay on one worker.
WORKERS_TEST ?= 2
HEAVY_MARKS := slow or docker or browser or spark or redis or postgres or s3 or alerting or stack
test: lint typecheck $(SPARK_STAMP)  ## Lint, types, and the whole test suite with coverage of src/.
	$(BIN)/python -m pytest -n $(WORKERS_TEST) --dist loadgroup --durations=25 \
	  --cov --cov-report=term --cov-report=xml:reports/coverage.xml

test-fast: setup  ## The tests without a heavy mark: what to run before each commit.
	$(BIN)/python -m pytest -m "not ($(HEAVY_MARKS))"

MARKS ?= slow
test-tier: setup $(SPARK_STAMP)  ## One tier of the suite, as CI's parallel jobs run it: make test-tier MARKS="docker".
	$(BIN)/python -m pytest -n $(WORKERS_TEST) --dist loadgroup --durations=25 -m "$(MARKS)"

bench-stack: setup  ## make stack from a fresh clone (tiny params) to the first prediction, cold then warm -> reports/stack.json.
	$(BIN)/python scripts/bench_stack.py

bench-tests: setup  ## Time the suite's tiers (a cold CI run is measured by .ci/run) -> reports/bench_tests.json.
	$(BIN)/python scripts/bench_tests.py

# One tool makes every lock: uv's pip compile, for Linux x86_64 and Python 3.11 (CI's and the
# images' platform). requirements.lock comes from pyproject.toml with its dev extra; the
# containers' and Spark's from their .in files within it (-c), so each pins the same versions.
# An existing lock's pins are kept unless a package is named for upgrade.
LOCK = $(BIN)/uv pip compile --quiet --python-version 3.11 --python-platform x86_64-unknown-linux-gnu \
  --custom-compile-command "make lock"
SUBLOCKS = serve slim monitor spark mlflow
lock: $(BIN)/uv  ## Re-resolve all six locks after a change to pyproject.toml or a requirements-*.in (pins kept).
	$(LOCK) $(UPGRADE) pyproject.toml --extra dev -o requirements.lock
	for part in $(SUBLOCKS); do \
	  $(LOCK) requirements-$$part.in -c requirements.lock -o requirements-$$part.lock || exit 1; \
	done

upgrade: $(BIN)/uv  ## Upgrade one package in every lock: make upgrade PACKAGE=name (then make setup).
	@test -n "$(PACKAGE)" || { echo "make upgrade: name the package, e.g. make upgrade PACKAGE=flask" >&2; exit 2; }
	$(MAKE) --no-print-directory lock UPGRADE="--upgrade-package $(PACKAGE)"

clean:  ## Remove caches (not data, models or .venv).
	rm -rf .pytest_cache .mypy_cache .ruff_cache .coverage .coverage.* reports/coverage.xml
