"""The log check of the end-to-end schedule test: which server ERROR records fail it."""

from __future__ import annotations

from tests.flows.live_server import error_lines, error_records

HEADER = (
    "21:10:54.956 | ERROR   | prefect.server.utilities.worker_channel - Worker channel heartbeat persistence "
    "failed: work_pool=pricecast worker_name=ProcessWorker 1"
)
NEXT = "21:10:55.001 | INFO    | prefect.server - next record"


def _log(cause: str) -> str:
    return "\n".join([HEADER, "Traceback (most recent call last):", '  File "x.py", line 1', cause, NEXT])


def test_the_sqlite_heartbeat_race_is_tolerated_with_its_traceback():
    text = _log("sqlite3.OperationalError: database is locked")
    assert len(error_records(text)) == 1
    assert error_lines(text) == []


def test_the_same_record_with_another_cause_fails_the_check():
    text = _log("RuntimeError: Worker channel work pool no longer exists")
    assert error_lines(text) == [HEADER]


def test_every_other_error_fails_the_check_and_a_lock_elsewhere_is_not_excused():
    other = "21:11:00.000 | ERROR   | prefect.server.services.scheduler - sqlite3.OperationalError: database is locked"
    text = "\n".join([_log("sqlite3.OperationalError: database is locked"), other, "CRITICAL: boom"])
    assert error_lines(text) == [other, "CRITICAL: boom"]
