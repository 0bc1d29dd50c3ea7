"""The tick-to-Job benchmark's breakdown of API calls: by response code from /metrics, by caller
and phase from the audit log (pure helpers of ``bench.harness`` and ``bench.tick_to_job``)."""

from __future__ import annotations

import pytest
from bench import harness, tick_to_job

METRICS = "\n".join(
    [
        "# HELP apiserver_request_total Counter of apiserver requests",
        'apiserver_request_total{code="201",component="apiserver",dry_run="",group="batch",'
        'resource="jobs",scope="resource",subresource="",verb="POST",version="v1"} 7',
        'apiserver_request_total{code="409",component="apiserver",dry_run="",group="batch",'
        'resource="jobs",scope="resource",subresource="",verb="POST",version="v1"} 2',
        'apiserver_request_total{code="200",component="apiserver",dry_run="",'
        'group="qstash-operator.dev",resource="cronworkflows",scope="resource",'
        'subresource="status",verb="PATCH",version="v1alpha1"} 5',
        'apiserver_request_total{code="409",component="apiserver",dry_run="",'
        'group="qstash-operator.dev",resource="cronworkflows",scope="resource",'
        'subresource="status",verb="PATCH",version="v1alpha1"} 3',
        'apiserver_request_total{code="201",component="apiserver",dry_run="",group="",'
        'resource="events",scope="resource",subresource="",verb="POST",version="v1"} 4',
    ]
)


def test_request_totals_keep_the_code_and_sum_without_it() -> None:
    by_code = harness.parse_request_totals(METRICS)
    assert by_code == {
        "POST batch/jobs 201": 7,
        "POST batch/jobs 409": 2,
        "PATCH qstash-operator.dev/cronworkflows/status 200": 5,
        "PATCH qstash-operator.dev/cronworkflows/status 409": 3,
        "POST events 201": 4,
    }
    assert harness.without_code(by_code) == {
        "POST batch/jobs": 9,
        "PATCH qstash-operator.dev/cronworkflows/status": 8,
        "POST events": 4,
    }


def test_ours_by_code_takes_the_native_share_from_the_created_only() -> None:
    delta = {
        "POST batch/jobs 201": 10,
        "POST batch/jobs 409": 1,
        "POST events 201": 9,
        "PUT batch/jobs/status 200": 10,  # the job controller's, not ours
        "PATCH qstash-operator.dev/cronworkflows/status 409": 2,
        "LIST batch/jobs 200": 1,
        "WATCH batch/jobs 200": 3,
    }
    assert tick_to_job.ours_api_calls_by_code(delta, native_jobs=5) == {
        "POST batch/jobs 201": 5,
        "POST batch/jobs 409": 1,
        "POST events 201": 4,
        "PATCH qstash-operator.dev/cronworkflows/status 409": 2,
        "LIST batch/jobs 200": 1,
    }


@pytest.mark.parametrize(
    ("user_agent", "expected"),
    [
        ("qstash-operator-webhook/0.4.0", "webhook"),
        ("qstash-operator/0.4.0", "operator"),
        ("kopf/1.45.2", "operator"),
        (
            "kube-controller-manager/v1.36.3 (linux/amd64) kubernetes/abc/job-controller",
            "kcm:job-controller",
        ),
        ("kube-scheduler/v1.36.3 (linux/amd64) kubernetes/abc", "kube-scheduler"),
        ("Python/3.11 aiohttp/3.14.5", "bench"),
        ("curl/8.0", "curl"),
        ("", "?"),
    ],
)
def test_caller_names(user_agent: str, expected: str) -> None:
    assert harness.caller(user_agent) == expected


def _event(agent: str, verb: str, stamp: str, code: int = 201, **ref: str) -> dict[str, object]:
    return {
        "stage": "ResponseComplete",
        "userAgent": agent,
        "verb": verb,
        "objectRef": ref,
        "responseStatus": {"code": code},
        "requestReceivedTimestamp": stamp,
    }


TICK = 1_800_000_000.0  # 2027-01-15T08:00:00Z
EVENTS = [
    _event(
        "qstash-operator-webhook/1",
        "create",
        "2027-01-15T08:00:00.100000Z",
        resource="jobs",
        apiGroup="batch",
    ),
    _event(
        "qstash-operator-webhook/1",
        "create",
        "2027-01-15T08:00:00.700000Z",
        resource="jobs",
        apiGroup="batch",
    ),
    _event(
        "qstash-operator-webhook/1",
        "patch",
        "2027-01-15T08:00:01.200000Z",
        code=409,
        resource="cronworkflows",
        apiGroup="qstash-operator.dev",
        subresource="status",
    ),
    _event(
        "qstash-operator-webhook/1",
        "get",
        "2027-01-15T08:00:01.300000Z",
        code=200,
        resource="cronworkflows",
        apiGroup="qstash-operator.dev",
    ),
    _event(
        "kopf/1",
        "watch",
        "2027-01-15T08:00:00.200000Z",
        code=200,
        resource="jobs",
        apiGroup="batch",
    ),
    {
        "stage": "ResponseStarted",
        "userAgent": "kopf/1",
        "verb": "watch",
        "requestReceivedTimestamp": "2027-01-15T08:00:00.200000Z",
    },
]


def test_calls_are_counted_by_caller_and_phase_without_watches() -> None:
    calls = harness.audit_calls(EVENTS)
    assert len(calls) == 5  # the started stage of the watch is not a second call
    assert harness.count_calls(calls, TICK, TICK + 1.0) == {"webhook create batch/jobs 201": 2}
    assert harness.count_calls(calls, TICK + 1.0, TICK + 2.0) == {
        "webhook patch qstash-operator.dev/cronworkflows/status 409": 1,
        "webhook get qstash-operator.dev/cronworkflows 200": 1,
    }


def test_timeline_puts_each_write_in_its_bucket() -> None:
    calls = harness.audit_calls(EVENTS)
    assert harness.timeline(calls, TICK, TICK + 2.0, 0.5) == {
        "webhook create batch/jobs": [1, 1, 0, 0],
        "webhook patch qstash-operator.dev/cronworkflows/status": [0, 0, 1, 0],
    }


def test_ours_summed_keeps_only_our_kinds_and_takes_the_native_share() -> None:
    delta = {
        "POST batch/jobs": 11,
        "POST events": 9,
        "PUT batch/jobs/status": 10,  # the job controller's, not ours
        "PATCH qstash-operator.dev/cronworkflows/status": 2,
        "GET batch/jobs": 1,
        "WATCH qstash-operator.dev/cronworkflows": 3,
    }
    assert tick_to_job.ours_api_calls(delta, native_jobs=5) == {
        "POST batch/jobs": 6,
        "POST events": 4,
        "PATCH qstash-operator.dev/cronworkflows/status": 2,
        "GET batch/jobs": 1,
    }


@pytest.mark.parametrize(
    ("count", "same_minute", "minutes"),
    [
        pytest.param(500, False, 1, id="500: records in seconds, job controller in 25 s"),
        pytest.param(900, False, 1, id="900: 60 s of aftermath still fits the next minute"),
        pytest.param(2000, False, 2, id="2,000: the job controller's 100 s need a second minute"),
        pytest.param(2000, True, 0, id="--same-minute: both at T"),
    ],
)
def test_the_native_side_fires_after_our_aftermath(
    count: int, same_minute: bool, minutes: int
) -> None:
    offset = tick_to_job.native_offset(count, same_minute=same_minute)
    assert offset.total_seconds() == minutes * 60


def _one(count: int, ours: float, floor: float) -> dict[str, object]:
    return {
        "count": count,
        "ours_received_seconds": {"p99": ours},
        "floor": {"received_seconds": {"p99": floor}},
        "ratio_p99_floor": harness.ratio(ours, floor),
    }


def test_repeated_runs_are_summarised_per_size_by_their_median_ratio() -> None:
    runs = [_one(500, 1.2, 0.4), _one(500, 0.9, 0.6), _one(500, 2.0, 0.5), _one(2000, 6.0, 3.0)]
    summary = tick_to_job.summarise_repeats(runs)
    assert summary["500"]["ratio_p99_floor"] == [3.0, 1.5, 4.0]
    assert summary["500"]["median_ratio_p99_floor"] == 3.0
    assert summary["2000"]["median_ratio_p99_floor"] == 2.0
    (row,) = [r for r in tick_to_job.rows({"runs": {}, "repeats": summary}) if "500" in r.benchmark]
    assert (row.ours, row.baseline, row.ratio) == ("1.20", "0.50", "3.00")
