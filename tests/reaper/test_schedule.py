"""The beat schedule (config/celery.py) and the gauges task."""

from datetime import timedelta

import pytest
from prometheus_client import REGISTRY

from config.celery import app
from reaper import tasks

SCANS = {
    "reaper.expire_leases": "DPP_REAPER_LEASE_SCAN_SEC",
    "reaper.requeue_stale": "DPP_REAPER_REQUEUE_SCAN_SEC",
    "reaper.audit_ledger": "DPP_REAPER_AUDIT_SEC",
    "reaper.purge_expired_results": "DPP_REAPER_RETENTION_SEC",
    "reaper.record_gauges": "DPP_REAPER_GAUGES_SEC",
    "reaper.roll_up_usage": "DPP_REAPER_USAGE_SEC",
}


def test_each_scan_is_scheduled_at_its_settings_interval_on_the_reaper_queue(settings):
    schedule = app.conf.beat_schedule

    assert set(schedule) == set(SCANS)
    for task, setting in SCANS.items():
        entry = schedule[task]
        assert entry["task"] == task
        assert entry["schedule"] == getattr(settings, setting)
        # A tick that waited longer than its interval expires: the next one does the work.
        assert entry["options"]["expires"] == getattr(settings, setting)
        assert app.amqp.router.route({}, task)["queue"].name == "reaper"


def test_default_intervals_are_the_designs():
    defaults = {
        setting: value
        for setting, value in (
            ("DPP_REAPER_LEASE_SCAN_SEC", 30),
            ("DPP_REAPER_REQUEUE_SCAN_SEC", 60),
            ("DPP_REAPER_AUDIT_SEC", 300),
            ("DPP_REAPER_RETENTION_SEC", 3600),
            ("DPP_REAPER_GAUGES_SEC", 15),
            ("DPP_REAPER_USAGE_SEC", 300),
        )
    }
    for task, setting in SCANS.items():
        assert timedelta(seconds=app.conf.beat_schedule[task]["schedule"]) == timedelta(
            seconds=defaults[setting]
        )


@pytest.mark.django_db
def test_gauges_count_runs_by_state(make_run, monkeypatch):
    monkeypatch.setattr("reaper.gauges.record_queue_depth", lambda: None)
    make_run(), make_run()

    tasks.record_gauges()

    sample = REGISTRY.get_sample_value(
        "dpp_runs_by_state", {"status": "QUEUED", "money_state": "RESERVED"}
    )
    assert sample == 2
