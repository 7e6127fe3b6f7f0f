#!/bin/sh
# The one image's processes (docs/design.md §6). Usage:
#   api                 gunicorn, gthread workers, port 8000
#   worker              Celery worker on the `runs` queue (scale horizontally)
#   reaper              Celery worker on the `reaper` queue with embedded beat (-B):
#                       run EXACTLY ONE replica — two beats would double every schedule
#   migrate             python manage.py migrate --noinput (one-shot, before a rollout)
#   manage <cmd> [args] any manage.py command (dpp_audit, dpp_preflight, shell, …)
# Extra arguments after api/worker/reaper/migrate are passed to the underlying command.
set -eu

# Settings create DPP_VAR_DIR (beat schedule, scratch); with a read-only root filesystem
# it must be a writable mount (Kubernetes: an emptyDir at /tmp).
mkdir -p "${DPP_VAR_DIR:-/tmp/dpp}"

role="${1:-api}"
if [ "$#" -gt 0 ]; then
    shift
fi

# Gossip, mingle and the event heartbeat need broadcast (fanout) queues that a
# predefined-queue SQS broker does not have; DPP does not use them.
celery_flags="--without-gossip --without-mingle --without-heartbeat"

case "$role" in
    api)
        exec gunicorn config.wsgi \
            --config config/gunicorn.py \
            --bind 0.0.0.0:8000 \
            --worker-class gthread \
            --workers "${GUNICORN_WORKERS:-2}" \
            --threads "${GUNICORN_THREADS:-4}" \
            --timeout "${GUNICORN_TIMEOUT:-30}" \
            --graceful-timeout "${GUNICORN_GRACEFUL_TIMEOUT:-25}" \
            --worker-tmp-dir "${DPP_VAR_DIR:-/tmp/dpp}" \
            --log-level "${GUNICORN_LOG_LEVEL:-warning}" \
            "$@"
        ;;
    worker)
        # shellcheck disable=SC2086
        exec celery -A config worker -Q runs \
            --concurrency "${WORKER_CONCURRENCY:-2}" \
            --loglevel "${DPP_LOG_LEVEL:-INFO}" \
            --hostname "worker@%h" \
            $celery_flags \
            "$@"
        ;;
    reaper)
        # Beat embedded in the reaper-queue worker: one process tree, one container.
        # shellcheck disable=SC2086
        exec celery -A config worker -Q reaper -B \
            --concurrency 1 \
            --loglevel "${DPP_LOG_LEVEL:-INFO}" \
            --hostname "reaper@%h" \
            --schedule "${DPP_VAR_DIR:-/tmp/dpp}/celerybeat-schedule" \
            $celery_flags \
            "$@"
        ;;
    migrate)
        exec python manage.py migrate --noinput "$@"
        ;;
    manage)
        exec python manage.py "$@"
        ;;
    *)
        echo "usage: entrypoint.sh api|worker|reaper|migrate|manage <command> [args…]" >&2
        echo "unknown process type: $role" >&2
        exit 64
        ;;
esac
