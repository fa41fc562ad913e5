# Two set-up commands: `make run` and `make test`. Both create or update .venv themselves.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
PORT ?= 8000
export PORT

.PHONY: run test lint format bench screenshot docs docs-build venv venv-dev clean

# Stamp files: reinstall only when the requirement files change.
$(VENV)/.runtime: requirements.txt scripts/bootstrap_venv.py
	@$(PYTHON) scripts/bootstrap_venv.py $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	@touch $@

$(VENV)/.dev: $(VENV)/.runtime requirements-dev.txt
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	@touch $@

venv: $(VENV)/.runtime
venv-dev: $(VENV)/.dev

run: venv
	$(PY) manage.py migrate --noinput
	$(PY) manage.py ensure_admin
	$(PY) manage.py purge_email_log  # retention; in production, daily from cron (docs/operations.md)
	$(PY) scripts/serve.py  # the web server on $(PORT) and one mail worker

test: venv-dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports --no-cache
	# Models against migrations; no database needed (a fresh clone has none yet).
	DATABASE_URL=sqlite://:memory: $(PY) manage.py makemigrations --check --dry-run
	$(MAKE) --no-print-directory docs-build
	$(PY) scripts/run_tests.py

lint: venv-dev
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

# The documentation site (docs/, mkdocs.yml). docs-build checks every link and anchor
# (strict) and builds into a temporary directory, so nothing is left in the tree.
DOCS_PORT ?= 8001
docs-build: venv-dev
	@site=$$(mktemp -d); $(VENV)/bin/mkdocs build --strict --site-dir "$$site"; \
		status=$$?; rm -rf "$$site"; exit $$status

docs: venv-dev
	$(VENV)/bin/mkdocs serve --dev-addr 127.0.0.1:$(DOCS_PORT)

bench: venv-dev
	$(PY) -m tests.bench

screenshot: venv-dev
	$(PY) scripts/screenshot.py docs/mail-server.png

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
