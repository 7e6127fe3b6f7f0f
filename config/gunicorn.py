"""gunicorn hooks: the API's Prometheus metrics are one view over all its workers."""

from prometheus_client import multiprocess

from dpp.metrics import reset_multiprocess_dir


def on_starting(server) -> None:
    reset_multiprocess_dir()


def child_exit(server, worker) -> None:
    multiprocess.mark_process_dead(worker.pid)
