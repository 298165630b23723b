#!/bin/sh
# The image's entry points: web | worker | beat | migrate (anything else runs as given).
set -eu
cd /app
role="${1:-web}"
case "$role" in
  web)
    python manage.py migrate --noinput
    exec python -m config.web --bind 0.0.0.0 --port "${PORT:-8000}" --proxy-headers config.asgi:application
    ;;
  worker)
    # Threads: each session host holds one for its whole run (docs/session-lifecycle.md), under
    # no task time limit; SIGTERM drains the paper and live sessions to another worker at once.
    exec celery -A config worker --pool threads --loglevel "${LOG_LEVEL:-INFO}" \
      --concurrency "${WORKER_CONCURRENCY:-2}"
    ;;
  beat)
    exec celery -A config beat --loglevel "${LOG_LEVEL:-INFO}" \
      --scheduler django_celery_beat.schedulers:DatabaseScheduler
    ;;
  migrate)
    exec python manage.py migrate --noinput
    ;;
  *)
    exec "$@"
    ;;
esac
