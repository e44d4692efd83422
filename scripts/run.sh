#!/usr/bin/env bash
# Serve the site (development server, local settings) with a Celery worker and Celery beat beside it.
#
# Ctrl-C or SIGTERM stops all three within seconds: the site and beat at once; the worker finishes
# the task in hand (warm shutdown) for at most CASEWORK_STOP_GRACE seconds (default 5), then stops
# cold. A task cut short is not lost: tasks are acknowledged late, so the broker hands it out again
# at the next start. If one of the three dies, the others are stopped too.
set -uo pipefail
cd "$(dirname "$0")/.."
export DJANGO_SETTINGS_MODULE=config.settings.local
PY=.venv/bin/python
PORT="${PORT:-8000}"
GRACE="${CASEWORK_STOP_GRACE:-5}"
LOG_DIR="${CASEWORK_VAR_DIR:-var}/log"
mkdir -p "$LOG_DIR"

alive() { kill -0 "$1" 2>/dev/null; }

# Wait until process $1 has exited, at most $2 seconds; true when it has.
gone_within() {
  local pid=$1 left=$(( $2 * 10 ))
  while alive "$pid" && (( left > 0 )); do sleep 0.1; left=$(( left - 1 )); done
  ! alive "$pid"
}

stopping=0
stop() {
  (( stopping )) && return
  stopping=1
  trap '' INT TERM
  echo "Stopping site, beat and worker …"
  for pid in "$site" "$beat" "$worker"; do kill -TERM "$pid" 2>/dev/null || true; done
  if ! gone_within "$worker" "$GRACE"; then
    echo "Worker still busy after ${GRACE}s: cold shutdown (its task will be handed out again)."
    kill -QUIT "$worker" 2>/dev/null || true
    gone_within "$worker" 5 || kill -KILL "$worker" 2>/dev/null || true
  fi
  for pid in "$site" "$beat"; do gone_within "$pid" 5 || kill -KILL "$pid" 2>/dev/null || true; done
  wait 2>/dev/null
  echo "Stopped."
}
trap 'stop; exit 0' INT TERM

.venv/bin/celery -A config worker --loglevel=INFO --concurrency=2 >"$LOG_DIR/worker.log" 2>&1 &
worker=$!
.venv/bin/celery -A config beat --loglevel=INFO -S django_celery_beat.schedulers:DatabaseScheduler \
  --pidfile= >"$LOG_DIR/beat.log" 2>&1 &
beat=$!
$PY manage.py runserver "127.0.0.1:${PORT}" --noreload &
site=$!
echo "Celery worker and beat started (logs: $LOG_DIR/worker.log, $LOG_DIR/beat.log)"
echo "Site: http://127.0.0.1:${PORT}/admin/   (Ctrl-C stops site, worker and beat)"
# Returns when any of the three exits, or at once when a signal arrives (the trap then runs).
wait -n
stop
