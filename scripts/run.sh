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
  echo "正在停止网站、定时任务(beat)和后台任务(worker)……"
  for pid in "$site" "$beat" "$worker"; do kill -TERM "$pid" 2>/dev/null || true; done
  if ! gone_within "$worker" "$GRACE"; then
    echo "后台任务 ${GRACE} 秒内未结束:强制停止(未完成的任务下次启动时重新执行)。"
    kill -QUIT "$worker" 2>/dev/null || true
    gone_within "$worker" 5 || kill -KILL "$worker" 2>/dev/null || true
  fi
  for pid in "$site" "$beat"; do gone_within "$pid" 5 || kill -KILL "$pid" 2>/dev/null || true; done
  wait 2>/dev/null
  echo "已停止。"
}
trap 'stop; exit 0' INT TERM

.venv/bin/celery -A config worker --loglevel=INFO --concurrency=2 >"$LOG_DIR/worker.log" 2>&1 &
worker=$!
.venv/bin/celery -A config beat --loglevel=INFO -S django_celery_beat.schedulers:DatabaseScheduler \
  --pidfile= >"$LOG_DIR/beat.log" 2>&1 &
beat=$!
$PY manage.py runserver "127.0.0.1:${PORT}" --noreload &
site=$!
echo "后台任务与定时任务已启动(日志:$LOG_DIR/worker.log、$LOG_DIR/beat.log)"
echo "网站:http://127.0.0.1:${PORT}/admin/   (按 Ctrl-C 停止网站、后台任务和定时任务)"
# Returns when any of the three exits, or at once when a signal arrives (the trap then runs).
wait -n
stop
