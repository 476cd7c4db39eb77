"""Stored code and deployments over HTTP: content-addressed blobs, deploy / re-deploy,
scheduled runs created ahead, pause / resume / delete, runs on demand, tenants apart."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any

import requests

from runwright.schedules import CronSchedule, IntervalSchedule
from runwright_server.testing import TestServer, unique


def every(seconds: float, start: datetime | None = None) -> dict[str, Any]:
    return IntervalSchedule(start or datetime.now(UTC), timedelta(seconds=seconds)).serialize()


def deploy(server: TestServer, session: requests.Session, **fields: Any) -> requests.Response:
    if "flow_id" not in fields:
        fields["flow_id"] = server.make_flow(session)["id"]
    body = {"name": unique("dep"), "flow_name": "f", "storage": "server", "storage_ref": {"digest": "0" * 64}}
    body.update(fields)
    return session.post(f"{server.api}/deployments", json=body)


def runs_of(server: TestServer, session: requests.Session, flow_id: str) -> list[dict[str, Any]]:
    r = session.get(f"{server.api}/flow_runs", params={"flow_id": flow_id, "limit": 1000})
    assert r.status_code == 200, r.text
    runs: list[dict[str, Any]] = r.json()
    return sorted(runs, key=lambda run: run["scheduled_start_time"])


# ----------------------------------------------------------------------------- stored code


def test_stored_code_is_content_addressed_and_each_tenants_own(server: TestServer, sa, sb) -> None:
    data = f"print({unique()!r})\n".encode()
    digest = hashlib.sha256(data).hexdigest()
    first = sa.put(f"{server.api}/storage/{digest}", data=data)
    again = sa.put(f"{server.api}/storage/{digest}", data=data)
    assert (first.status_code, first.json()["created"]) == (201, True)
    assert (again.status_code, again.json()["created"]) == (200, False)
    got = sa.get(f"{server.api}/storage/{digest}")
    assert got.status_code == 200 and got.content == data
    assert got.headers["content-type"] == "application/octet-stream"

    assert sb.get(f"{server.api}/storage/{digest}").status_code == 404  # another tenant's
    assert sa.get(f"{server.api}/storage/{'f' * 64}").status_code == 404
    assert sa.get(f"{server.api}/storage/not-a-digest").status_code == 404


def test_bytes_that_do_not_hash_to_the_digest_are_refused(server: TestServer, sa) -> None:
    wrong = sa.put(f"{server.api}/storage/{'a' * 64}", data=b"something else")
    assert wrong.status_code == 422
    assert hashlib.sha256(b"something else").hexdigest() in wrong.json()["detail"]
    assert sa.put(f"{server.api}/storage/xyz", data=b"x").status_code == 422


def test_stored_code_may_be_larger_than_the_json_limit(server: TestServer, sa) -> None:
    data = b"#" * (server.max_json_body + 1)
    digest = hashlib.sha256(data).hexdigest()
    assert sa.put(f"{server.api}/storage/{digest}", data=data).status_code == 201
    too_big = b"#" * (server.max_body + 1)
    assert sa.put(f"{server.api}/storage/{hashlib.sha256(too_big).hexdigest()}", data=too_big).status_code == 413


# ----------------------------------------------------------------------------- deployments


def test_deploying_creates_the_runs_of_the_next_starts_and_redeploying_changes_nothing(server: TestServer, sa) -> None:
    flow = server.make_flow(sa)
    schedule = every(60)
    r = deploy(server, sa, flow_id=flow["id"], schedule=schedule, parameters={"x": 1}, queue="etl")
    assert r.status_code == 201, r.text
    created = r.json()
    assert created["changed"] is True and created["version"] == 1 and created["paused"] is False
    assert len(created["next_starts"]) == 3

    runs = runs_of(server, sa, flow["id"])
    assert len(runs) == 1 + 10  # the start at deploy time, due now, and [server] schedule_ahead_runs more
    assert {run["state"]["type"] for run in runs} == {"Scheduled"}
    assert {run["parameters"]["x"] for run in runs} == {1}
    starts = [datetime.fromisoformat(run["scheduled_start_time"]) for run in runs]
    assert all(b - a == timedelta(seconds=60) for a, b in zip(starts, starts[1:], strict=False))
    assert abs(starts[0] - datetime.fromisoformat(schedule["start_date"])) < timedelta(seconds=1)
    assert [run["state"]["start_time"] for run in runs] == [run["scheduled_start_time"].replace("Z", "+00:00") for run in runs]

    again = deploy(server, sa, name=created["name"], flow_id=flow["id"], schedule=schedule, parameters={"x": 1}, queue="etl")
    assert again.status_code == 200
    assert again.json()["changed"] is False and again.json()["version"] == 1
    assert [run["id"] for run in runs_of(server, sa, flow["id"])] == [run["id"] for run in runs]


def test_a_changed_schedule_replaces_the_untouched_runs(server: TestServer, sa) -> None:
    flow = server.make_flow(sa)
    name = unique("dep")
    assert deploy(server, sa, name=name, flow_id=flow["id"], schedule=every(60)).status_code == 201
    before = runs_of(server, sa, flow["id"])
    first = before[0]
    claimed = sa.post(
        f"{server.api}/flow_runs/{first['id']}/state", json={"version": 0, "state": {"type": "Running"}}
    )
    assert claimed.status_code == 200, claimed.text

    changed = deploy(server, sa, name=name, flow_id=flow["id"], schedule=every(300))
    assert changed.status_code == 200
    assert changed.json()["changed"] is True and changed.json()["version"] == 2
    after = runs_of(server, sa, flow["id"])
    kept = [run for run in after if run["id"] == first["id"]]
    assert kept and kept[0]["state"]["type"] == "Running"  # a run that started is never dropped
    new = [run for run in after if run["id"] != first["id"]]
    assert len(new) == 1 + 10 and not {run["id"] for run in new} & {run["id"] for run in before}
    starts = [datetime.fromisoformat(run["scheduled_start_time"]) for run in new]
    assert all(b - a == timedelta(seconds=300) for a, b in zip(starts, starts[1:], strict=False))


def test_runs_are_created_only_within_the_horizon(server: TestServer, sa) -> None:
    flow = server.make_flow(sa)
    r = deploy(server, sa, flow_id=flow["id"], schedule=CronSchedule("0 0 1 1 *").serialize())  # yearly
    assert r.status_code == 201
    assert runs_of(server, sa, flow["id"]) == [] or all(
        datetime.fromisoformat(run["scheduled_start_time"]) <= datetime.now(UTC) + timedelta(hours=1)
        for run in runs_of(server, sa, flow["id"])
    )
    assert len(r.json()["next_starts"]) == 3


def test_a_deployment_without_a_schedule_runs_only_when_asked(server: TestServer, sa) -> None:
    flow = server.make_flow(sa)
    r = deploy(server, sa, flow_id=flow["id"], parameters={"x": 1, "y": 2}, queue="q1")
    assert r.status_code == 201
    assert r.json()["schedule"] is None and r.json()["next_starts"] == []
    assert runs_of(server, sa, flow["id"]) == []

    run = sa.post(f"{server.api}/deployments/{r.json()['name']}/runs", json={"parameters": {"y": 3}})
    assert run.status_code == 201, run.text
    body = run.json()
    assert body["state"]["type"] == "Scheduled" and body["late"] is False
    assert body["parameters"] == {"x": 1, "y": 3}
    assert abs(datetime.fromisoformat(body["scheduled_start_time"]) - datetime.now(UTC)) < timedelta(seconds=30)
    assert {t["task_slug"] for t in body["task_runs"]} == {"a", "b"}
    assert [run["id"] for run in runs_of(server, sa, flow["id"])] == [body["id"]]


def test_pause_drops_the_scheduled_runs_and_resume_schedules_again(server: TestServer, sa) -> None:
    flow = server.make_flow(sa)
    name = deploy(server, sa, flow_id=flow["id"], schedule=every(60)).json()["name"]
    paused = sa.post(f"{server.api}/deployments/{name}/pause")
    assert paused.status_code == 200
    assert paused.json()["paused"] is True and paused.json()["next_starts"] == []
    assert runs_of(server, sa, flow["id"]) == []
    assert sa.post(f"{server.api}/deployments/{name}/runs", json={}).status_code == 201  # still runs when asked

    resumed = sa.post(f"{server.api}/deployments/{name}/resume")
    assert resumed.status_code == 200 and resumed.json()["paused"] is False
    assert len(runs_of(server, sa, flow["id"])) == 1 + 10  # the manual run, and the next 10 starts


def test_delete_drops_the_runs_that_never_started_and_keeps_the_others(server: TestServer, sa) -> None:
    flow = server.make_flow(sa)
    name = deploy(server, sa, flow_id=flow["id"], schedule=every(60)).json()["name"]
    finished = runs_of(server, sa, flow["id"])[0]
    for version, state in enumerate(({"type": "Running"}, {"type": "Success"})):
        assert sa.post(f"{server.api}/flow_runs/{finished['id']}/state", json={"version": version, "state": state}).ok

    deleted = sa.delete(f"{server.api}/deployments/{name}")
    assert deleted.status_code == 200
    assert deleted.json() == {"name": name, "dropped_runs": 10, "cancelled_runs": 0}
    assert sa.get(f"{server.api}/deployments/{name}").status_code == 404
    assert [run["id"] for run in runs_of(server, sa, flow["id"])] == [finished["id"]]
    assert sa.delete(f"{server.api}/deployments/{name}").status_code == 404


def test_list_and_read_show_schedule_and_next_starts(server: TestServer, sa) -> None:
    name = deploy(server, sa, schedule=every(3600), concurrency_limit=2, executor="threads").json()["name"]
    listed = {d["name"]: d for d in sa.get(f"{server.api}/deployments").json()}
    assert name in listed
    one = sa.get(f"{server.api}/deployments/{name}").json()
    assert one == listed[name] | {"next_starts": one["next_starts"]}
    assert one["schedule"]["type"] == "IntervalSchedule" and one["concurrency_limit"] == 2
    assert one["executor"] == "threads" and one["queue"] == "default"
    starts = [datetime.fromisoformat(s) for s in one["next_starts"]]
    assert len(starts) == 3 and starts == sorted(starts) and starts[0] > datetime.now(UTC) - timedelta(seconds=5)


def test_bad_deployments_are_refused_with_422_or_404(server: TestServer, sa) -> None:
    assert deploy(server, sa, schedule={"type": "IntervalSchedule"}).status_code == 422
    assert deploy(server, sa, schedule={"type": "CronSchedule", "cron": "not cron"}).status_code == 422
    assert deploy(server, sa, name="has space").status_code == 422
    assert deploy(server, sa, name="../x").status_code == 422
    assert deploy(server, sa, flow_id="00000000-0000-0000-0000-000000000000").status_code == 404
    assert deploy(server, sa, storage_ref={"x": "y" * 20_000}).status_code == 422
    assert sa.get(f"{server.api}/deployments/{unique('nope')}").status_code == 404
    assert sa.post(f"{server.api}/deployments/{unique('nope')}/runs", json={}).status_code == 404


def test_tenants_never_see_each_others_deployments(server: TestServer, sa, sb) -> None:
    flow_a = server.make_flow(sa)
    name = deploy(server, sa, flow_id=flow_a["id"], schedule=every(60)).json()["name"]
    assert name not in {d["name"] for d in sb.get(f"{server.api}/deployments").json()}
    assert sb.get(f"{server.api}/deployments/{name}").status_code == 404
    assert sb.post(f"{server.api}/deployments/{name}/runs", json={}).status_code == 404
    assert sb.post(f"{server.api}/deployments/{name}/pause").status_code == 404
    assert sb.delete(f"{server.api}/deployments/{name}").status_code == 404
    assert deploy(server, sb, name=name, flow_id=flow_a["id"]).status_code == 404  # a's flow is not b's

    own = deploy(server, sb, name=name)  # the same name is b's own deployment
    assert own.status_code == 201 and own.json()["id"] != sa.get(f"{server.api}/deployments/{name}").json()["id"]
    assert sa.get(f"{server.api}/deployments/{name}").json()["paused"] is False
    assert len(runs_of(server, sa, flow_a["id"])) == 11


def test_a_scheduled_run_past_its_start_reads_late(server: TestServer, sa) -> None:
    flow = server.make_flow(sa)
    past = (datetime.now(UTC) - timedelta(seconds=60)).isoformat()
    future = (datetime.now(UTC) + timedelta(seconds=60)).isoformat()
    late = sa.post(f"{server.api}/flow_runs", json={"flow_id": flow["id"], "scheduled_start_time": past}).json()
    early = sa.post(f"{server.api}/flow_runs", json={"flow_id": flow["id"], "scheduled_start_time": future}).json()
    assert late["late"] is True and early["late"] is False
    assert sa.get(f"{server.api}/flow_runs/{late['id']}").json()["late"] is True
    listed = {run["id"]: run["late"] for run in runs_of(server, sa, flow["id"])}
    assert listed == {late["id"]: True, early["id"]: False}
    started = sa.post(f"{server.api}/flow_runs/{late['id']}/state", json={"version": 0, "state": {"type": "Running"}})
    assert started.ok and sa.get(f"{server.api}/flow_runs/{late['id']}").json()["late"] is False


def test_a_schedule_running_off_the_calendar_simply_ends(server: TestServer, sa) -> None:
    flow = server.make_flow(sa)
    end_of_time = IntervalSchedule(datetime(9999, 12, 25, tzinfo=UTC), timedelta(days=1)).serialize()
    r = deploy(server, sa, flow_id=flow["id"], schedule=end_of_time)
    assert r.status_code == 201, r.text
    assert len(r.json()["next_starts"]) == 3
    assert runs_of(server, sa, flow["id"]) == []
    too_far = IntervalSchedule(datetime(9999, 12, 31, tzinfo=UTC), timedelta(days=1)).serialize()
    assert deploy(server, sa, flow_id=flow["id"], schedule=too_far).status_code == 422
