#!/usr/bin/env bash
# Serve the site with a Celery worker and Celery beat beside it; Ctrl-C stops all three.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
PORT="${PORT:-8000}"
LOG_DIR="${CASEWORK_VAR_DIR:-var}/log"
mkdir -p "$LOG_DIR"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT INT TERM
.venv/bin/celery -A config worker --loglevel=INFO --concurrency=2 >"$LOG_DIR/worker.log" 2>&1 &
pids+=($!)
.venv/bin/celery -A config beat --loglevel=INFO -S django_celery_beat.schedulers:DatabaseScheduler \
  --pidfile= >"$LOG_DIR/beat.log" 2>&1 &
pids+=($!)
echo "Celery worker and beat started (logs: $LOG_DIR/worker.log, $LOG_DIR/beat.log)"
echo "Site: http://127.0.0.1:${PORT}/admin/   (Ctrl-C stops site, worker and beat)"
$PY manage.py runserver "127.0.0.1:${PORT}" --noreload
