# Every target creates .venv and installs requirements.txt first, on Python 3.11.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export FLASK_APP := wsgi

.PHONY: help lock audit run test test-embedded test-services worker lint bench bench-smoke migration diagrams translations

help: ## Show the targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-15s %s\n", $$1, $$2}'

$(STAMP): requirements.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	$(BIN)/pybabel compile --directory translations
	touch $(STAMP)

run: $(STAMP) ## Run the service on http://127.0.0.1:5000 (SQLite + in-process queue by default)
	$(BIN)/flask --app wsgi db upgrade
	HOTLINE_BIND=$${HOST:-127.0.0.1}:$${PORT:-5000} SESSION_COOKIE_SECURE=$${SESSION_COOKIE_SECURE:-false} $(BIN)/flask --app wsgi run --host $${HOST:-127.0.0.1} --port $${PORT:-5000}

test: $(STAMP) ## Run the whole test suite (with CI=true: lint, PostgreSQL + Redis, then the fast tests again on the embedded defaults)
	$(BIN)/python .ci/browser.py
	@if [ "$$CI" = "true" ]; then \
		$(BIN)/ruff check . && $(BIN)/mypy --cache-dir .mypy_cache && \
		$(BIN)/python .ci/audit.py && \
		TEST_BACKEND=services $(BIN)/python -m pytest -n 2 --dist loadgroup $(PYTEST_ARGS) && \
		TEST_BACKEND=embedded $(BIN)/python -m pytest -n 2 --dist loadgroup -m "not services and not browser and not slow" $(PYTEST_ARGS); \
	else \
		$(BIN)/python -m pytest -n 2 --dist loadgroup $(PYTEST_ARGS); \
	fi

lock: $(STAMP) ## Regenerate requirements.lock (runtime pins of requirements.txt, hashed)
	$(BIN)/python .ci/lock.py

audit: $(STAMP) ## pip-audit over requirements.lock (skips when its source is unreachable)
	$(BIN)/python .ci/audit.py

worker: $(STAMP) ## Run a delivery worker against REDIS_URL
	$(BIN)/flask --app wsgi worker

lint: $(STAMP) ## ruff and mypy (CI runs it before the tests)
	$(BIN)/ruff check .
	$(BIN)/mypy --cache-dir .mypy_cache

bench: $(STAMP) ## Run the benchmarks (gunicorn, PostgreSQL, Redis, RQ workers) and print a table
	$(BIN)/python -m bench

bench-smoke: $(STAMP) ## A tiny run of the benchmarks, to check they work
	$(BIN)/python -m bench --smoke

migration: $(STAMP) ## Autogenerate a migration from the models: make migration m="message"
	$(BIN)/python migrations/regenerate.py "$(m)"

# The UI's words: extract the msgids (Python _l/_/gettext, templates' _() and {% trans %};
# mapping in pyproject.toml), merge them into each translations/<lang>/LC_MESSAGES/messages.po,
# and compile the .mo files (not committed; also compiled at install and by the app at start).
translations: $(STAMP) ## Extract the UI's words, update translations/*/messages.po, compile .mo
	$(BIN)/pybabel extract -F pyproject.toml -k _l -k lazy_gettext --add-location=file \
		--sort-output --project hotline --no-wrap -o translations/messages.pot intake referrals config
	$(BIN)/pybabel update -i translations/messages.pot -d translations --no-wrap --ignore-obsolete
	$(BIN)/pybabel compile -d translations --statistics

diagrams: $(STAMP) ## Print the state diagrams (Mermaid) generated from the machines
	$(BIN)/flask --app wsgi diagrams
