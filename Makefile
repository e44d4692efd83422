# One command to run the bureau, one to test it. See README.md.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PORT   ?= 8000
# Links in e-mails point at the port the site is served on unless SITE_URL says otherwise.
SITE_URL ?= http://127.0.0.1:$(PORT)
export SITE_URL
# manage.py, wsgi.py and celery.py default to the production settings (fail closed); the one-command
# demo says explicitly that it runs the local ones, the tests the test ones.
LOCAL  := DJANGO_SETTINGS_MODULE=config.settings.local

.PHONY: venv run setup test lint browser-deps clean-demo serve-production

$(VENV)/.installed: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -r requirements.txt
	touch $@

venv: $(VENV)/.installed

## Set up the demo bureau on real messages (idempotent).
setup: venv
	$(LOCAL) $(PY) manage.py migrate --noinput
	$(LOCAL) $(PY) manage.py demo_setup

## Set up, then serve the site on 127.0.0.1:$(PORT) with a Celery worker and beat beside it.
run: setup
	$(LOCAL) PORT=$(PORT) bash scripts/run.sh

## Serve for real: production settings under gunicorn, with a worker and beat (see scripts/serve_production.sh).
serve-production: venv
	bash scripts/serve_production.sh

## Headless Chromium and a CJK font for the browser tests, GNU gettext for the catalogue test
## (Debian packages; never `playwright install`).
# chromium: browser tests; fonts-wqy-microhei: Chinese in pages and PDFs; gettext: the catalogue;
# libpango-1.0-0 libpangoft2-1.0-0: WeasyPrint's PDF of a 督办单 / referral; poppler-utils: tests render PDFs.
APT_PACKAGES = chromium fonts-wqy-microhei gettext libpango-1.0-0 libpangoft2-1.0-0 poppler-utils
browser-deps:
	@{ command -v chromium && command -v xgettext && command -v pdftoppm && ls /usr/lib/*/libpangoft2-1.0.so.0; } >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq $(APT_PACKAGES); \
	  else sudo apt-get update -qq && sudo apt-get install -y -qq $(APT_PACKAGES); fi; }

## Run the whole test suite (SQLite by default; DATABASE_URL / REDIS_URL select PostgreSQL / Redis).
test: venv browser-deps
	DJANGO_SETTINGS_MODULE=config.settings.test $(VENV)/bin/pytest -n 2 --dist loadfile

lint: venv
	$(VENV)/bin/ruff check .
