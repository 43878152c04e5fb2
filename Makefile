# One command to run the service, one to test it. Needs only Python 3.11.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test lint bench drills venv chromium prometheus

$(STAMP): requirements.txt requirements-dev.txt
	$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), "Python 3.11 is required, found " + sys.version'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $(STAMP)

venv: $(STAMP)

## run: start embedded Postgres, migrate, load demo data, web (gunicorn, reloading) on
## 127.0.0.1:8000 + worker; RUN_ARGS are devserver's (--port 8123, --web-workers 2, --no-demo)
run: $(STAMP)
	$(PY) manage.py devserver $(RUN_ARGS)

## test: the whole pytest suite against real PostgreSQL (embedded unless DATABASE_URL is set)
test: $(STAMP) chromium prometheus
	ENVIRONMENT=test $(PY) -m pytest $(PYTEST_ARGS)

# The admin browser test drives Debian's chromium; install it when we can (root + apt).
chromium:
	@test -x /usr/bin/chromium || { \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
			echo "Installing Debian's chromium for the browser test..."; \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
		else \
			echo "Note: /usr/bin/chromium is missing; the admin browser test will fail (apt-get install chromium)."; \
		fi; }

# The metrics and alert-rule tests run Debian's promtool; install it when we can (root + apt).
prometheus:
	@test -x /usr/bin/promtool || { \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
			echo "Installing Debian's prometheus (promtool) for the metrics tests..."; \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null; \
		else \
			echo "Note: /usr/bin/promtool is missing; the metrics and alert-rule tests will fail (apt-get install prometheus)."; \
		fi; }

## lint: ruff (style, bugs) and import-linter (the layers of DESIGN.md, no import cycles)
lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports --no-cache

## drills: the reliability drills against a real service of their own (< 15 min); exit 1 on a broken invariant
drills: $(STAMP)
	$(PY) bench/drills.py $(DRILLS_ARGS)

bench: $(STAMP)
	@set -e; for script in $$(ls bench/[!_]*.py | grep -v drills.py); do \
		echo "== $$script"; $(PY) $$script; \
	done
