#!/usr/bin/env bash
# Serve for real: the production settings under gunicorn, static files by whitenoise, with a Celery
# worker and Celery beat beside it. Put a TLS-terminating front server (nginx, the bureau's gateway)
# before BIND; it must set X-Forwarded-Proto (DJANGO_SECURE_PROXY_SSL_HEADER) and X-Forwarded-For
# (list its address in CASEWORK_TRUSTED_PROXIES).
#
# Needs the variables of config/settings/production.py (DJANGO_SECRET_KEY, CASEWORK_AUDIT_KEY, DJANGO_ALLOWED_HOSTS,
# DATABASE_URL, REDIS_URL, SITE_URL, EMAIL_HOST …); it stops at once, naming the one missing.
#
#   BIND            address:port gunicorn listens on (default 127.0.0.1:8000: only the front server)
#   WEB_WORKERS     gunicorn worker processes (default 3: one more than the 2 cores of the reference machine)
#   WEB_THREADS     threads per worker (default 4; above 1 gunicorn runs its gthread worker): a request
#                   waiting on PostgreSQL, Redis or the broker no longer holds a whole process
#   WEB_MAX_REQUESTS  a worker is replaced after this many requests, ± 10 % jitter (default 2000; 0: never)
#   CELERY_WORKERS  Celery worker processes (default 2)
#   SERVE_ONLY=web  run gunicorn alone (worker and beat run elsewhere, e.g. as their own services)
#
# Under systemd or a container run the three as separate services with the same environment:
#   gunicorn config.wsgi --bind … ; celery -A config worker ; celery -A config beat -S django
set -euo pipefail
cd "$(dirname "$0")/.."
export DJANGO_SETTINGS_MODULE="${DJANGO_SETTINGS_MODULE:-config.settings.production}"
BIN=.venv/bin
BIND="${BIND:-127.0.0.1:8000}"

# collectstatic (hashing and compressing every file: the longest step) runs beside the checks and
# the migrations; the server starts once all three have succeeded.
$BIN/python manage.py collectstatic --noinput --verbosity 0 &
collect=$!
$BIN/python manage.py check --deploy --fail-level WARNING
$BIN/python manage.py migrate --noinput
wait "$collect"

pids=()
stop() {
  trap '' INT TERM
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap 'stop; exit 0' INT TERM

if [ "${SERVE_ONLY:-}" != "web" ]; then
  $BIN/celery -A config worker --loglevel=INFO --concurrency="${CELERY_WORKERS:-2}" &
  pids+=($!)
  $BIN/celery -A config beat --loglevel=INFO -S django_celery_beat.schedulers:DatabaseScheduler --pidfile= &
  pids+=($!)
fi
# --preload: the application is imported once, before the workers are forked (a broken import
# stops the server at once; workers start, and are replaced, in milliseconds). No control socket:
# gunicorn's default is one path per user, which two sites (or test runs) on one host would share.
MAX_REQUESTS="${WEB_MAX_REQUESTS:-2000}"
$BIN/gunicorn config.wsgi:application --bind "$BIND" --workers "${WEB_WORKERS:-3}" \
  --threads "${WEB_THREADS:-4}" --preload --no-control-socket \
  --max-requests "$MAX_REQUESTS" --max-requests-jitter "$((MAX_REQUESTS / 10))" \
  --access-logfile - --error-logfile - --timeout 60 --graceful-timeout 20 &
pids+=($!)
echo "Serving on $BIND (production settings) with ${SERVE_ONLY:+only the web server}${SERVE_ONLY:-worker and beat}"
wait -n
stop
