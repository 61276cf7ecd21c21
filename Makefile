# feastline: two commands on a fresh machine: `make serve` and `make test`.
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
REPO := feature_repo
HOST ?= 127.0.0.1
PORT ?= 8000
STAMP := $(VENV)/.installed
# The 2013 demo runs as a replay: the service clock is pinned to the end of the data, so online
# TTLs (3 h for weather) behave as they would have on 2013-12-31. Override with FEASTLINE_NOW=...
REPLAY_NOW ?= 2013-12-31T00:00:00Z
LINT_DIRS := service lineage feature_repo feastline tests $(wildcard bench)

.PHONY: install data apply materialize serve test lint bench clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip==25.3
	$(BIN)/pip install -q -c constraints.txt -e '.[dev,spark]' 2>&1 | grep -v "is ignored: it is neither" || true
	$(BIN)/python -c "import feast, service, lineage, feature_repo"
	touch $(STAMP)

install: $(STAMP)

# Each step skips itself when its inputs are unchanged since its last success (content hashes kept
# in feature_repo/data/.feastline/, see service/stamps.py), so a warm `make serve` starts in seconds.
data: install
	$(BIN)/feastline build-data --repo $(REPO) --if-changed

apply: data
	$(BIN)/feastline apply --repo $(REPO) --if-changed

materialize: apply
	FEASTLINE_NOW=$${FEASTLINE_NOW:-$(REPLAY_NOW)} $(BIN)/feastline materialize --repo $(REPO) --if-changed

serve: materialize
	FEASTLINE_NOW=$${FEASTLINE_NOW:-$(REPLAY_NOW)} $(BIN)/feastline serve --repo $(REPO) --host $(HOST) --port $(PORT)

lint: install
	$(BIN)/ruff check $(LINT_DIRS)
	$(BIN)/ruff format --check $(LINT_DIRS)
	$(BIN)/mypy --strict lineage feastline

test: install lint
	$(BIN)/python -m pytest tests

bench: materialize
	$(BIN)/python bench/training_set.py
	$(BIN)/python bench/online.py
	$(BIN)/python bench/lineage.py

clean:
	rm -rf $(REPO)/data
