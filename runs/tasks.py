"""Celery tasks of runs: thin wrappers that pass ids to ``runs.execution``."""

from celery import shared_task

from runs import execution

# The timebox (at most 90 s, the run_timebox_range constraint) is enforced around the pack
# by runs.timebox. This hard limit is only the backstop for a pack stuck where no signal
# reaches it: the pool kills the process, and the lease expiry hands the run to the reaper.
HARD_TIME_LIMIT_SEC = 90 + 30


@shared_task(
    name="runs.execute_run", acks_late=True, ignore_result=True, time_limit=HARD_TIME_LIMIT_SEC
)
def execute_run(run_id: str) -> None:
    execution.execute_run(run_id=run_id)
