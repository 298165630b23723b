"""The management API of sweeps: create (grid, random, walk-forward), list, detail with points,
best points and a heatmap, cancel; bad spaces in the error envelope naming their field; another
workspace's sweeps, versions and datasets are not found."""

from __future__ import annotations

import pytest

from runtimes.models import TradingSession
from runtimes.sweeps.models import Sweep
from tests.runtimes.sweeps.conftest import end_point, random_sweep_done

pytestmark = pytest.mark.django_db


@pytest.fixture
def url(workspace):
    return f"/api/v1/workspaces/{workspace.pk}/sweeps"


@pytest.fixture
def as_owner(api_client, owner):
    api_client.force_login(owner)
    return api_client


@pytest.fixture
def body(version, daily_dataset):
    return {"version": str(version.pk), "dataset": str(daily_dataset.pk),
            "parameters": {"fast": [5, 10], "slow": {"start": 20, "stop": 30, "step": 10}},
            "fixed": {"quantity": "1"}, "metric": "total_return"}


def test_creating_a_grid_sweep_answers_it_with_its_points(as_owner, url, body, version):
    response = as_owner.post(url, body, format="json")

    assert response.status_code == 201, response.content
    answer = response.json()
    sweep = Sweep.objects.get()
    assert (answer["id"], answer["name"], answer["state"], answer["metric"]) == (
        str(sweep.pk), "SMA v1 sweep", "running", "total_return")
    assert answer["space"] == {"mode": "grid", "parameters": {"fast": [5, 10], "slow": [20, 30]},
                               "fixed": {"quantity": "1"}, "samples": None, "seed": 0}
    assert answer["progress"] == {"total": 4, "completed": 0, "failed": 0, "cancelled": 0,
                                  "running": 0, "queued": 4, "pending": 0}
    sessions = {str(s.pk): s for s in TradingSession.objects.filter(sweep=sweep)}
    assert [(p["params"], p["state"]) for p in answer["points"]] == [
        ({"quantity": "1", "fast": 5, "slow": 20}, "queued"),
        ({"quantity": "1", "fast": 5, "slow": 30}, "queued"),
        ({"quantity": "1", "fast": 10, "slow": 20}, "queued"),
        ({"quantity": "1", "fast": 10, "slow": 30}, "queued")]
    assert {p["session"] for p in answer["points"]} == set(sessions)
    assert answer["best"] == {"metric": "total_return", "points": []}
    assert answer["walk_forward"] is None


def test_a_random_sweep_with_a_walk_forward_split(as_owner, url, body):
    body |= {"mode": "random", "parameters": {"fast": {"min": 2, "max": 9}}, "samples": 3,
             "seed": 4, "split_fraction": "0.5", "oos_top": 1}

    answer = as_owner.post(url, body, format="json").json()

    assert answer["walk_forward"] == {"split_at": "2021-02-19T12:00:00Z", "top": 1}
    assert [p["phase"] for p in answer["points"]] == ["in_sample"] * 3
    assert [p["params"]["fast"] for p in answer["points"]] == [
        p["params"]["fast"] for p in as_owner.get(f"{url}/{answer['id']}").json()["points"]]


def test_the_same_seed_draws_the_same_points(as_owner, url, body):
    body |= {"mode": "random", "parameters": {"fast": {"min": 2, "max": 60}}, "samples": 5,
             "seed": 11}

    first = as_owner.post(url, body, format="json").json()["points"]
    second = as_owner.post(url, body, format="json").json()["points"]

    assert [p["params"] for p in first] == [p["params"] for p in second]


@pytest.mark.parametrize(("change", "details"), [
    ({"parameters": {"fast": {"start": 1, "stop": 5, "step": -1}}},
     {"parameters.fast": ["'step' must be positive."]}),
    ({"parameters": {"a": list(range(50)), "b": list(range(50))}},
     {"parameters": ["The grid has 2,500 points; at most 1,000 are allowed."]}),
    ({"parameters": "fast"},
     {"parameters": ["Give at least one parameter to sweep, as an object like "
                     "{\"fast\": [5, 10, 20]}."]}),
    ({"mode": "random", "parameters": {"fast": {"min": 1, "max": 3}}},
     {"samples": ["A random sweep needs 'samples': 1 to 1,000."]}),
    ({"symbols": ["QQQ"]}, {"symbols": ["The dataset has no data for QQQ; it has SPY."]}),
])
def test_a_bad_sweep_is_a_400_in_the_error_envelope_naming_its_field(as_owner, url, body,
                                                                      change, details):
    response = as_owner.post(url, body | change, format="json")

    assert response.status_code == 400
    assert response.json() == {"code": "VALIDATION_ERROR",
                               "message": "The sweep has invalid fields; see details.",
                               "details": details}
    assert not Sweep.objects.exists()


def test_a_metric_outside_the_list_is_a_serializer_error(as_owner, url, body):
    response = as_owner.post(url, body | {"metric": "luck"}, format="json")

    assert (response.status_code, response.json()["code"],
            list(response.json()["details"])) == (400, "VALIDATION_ERROR", ["metric"])


def test_the_list_the_detail_with_best_points_and_heatmap_and_cancel(as_owner, url, body):
    created = as_owner.post(url, body, format="json").json()
    sessions = [TradingSession.objects.get(pk=p["session"]) for p in created["points"]]
    for session, value in zip(sessions[:3], ["0.1", "0.3", "-0.2"], strict=True):
        end_point(session, total_return=value, sharpe="1")

    listed = as_owner.get(url).json()
    assert [(s["id"], s["progress"]["completed"]) for s in listed] == [(created["id"], 3)]
    assert "points" not in listed[0]
    detail = as_owner.get(f"{url}/{created['id']}?x=slow&y=fast").json()
    assert [p["params"]["slow"] for p in detail["best"]["points"]] == [30, 20, 20]
    assert detail["heatmap"] | {"cells": None} == {
        "x": "slow", "y": "fast", "metric": "total_return", "aggregate": "best",
        "grouped": False, "xs": [20, 30], "ys": [5, 10], "cells": None, "min": "-0.2", "max": "0.3"}
    assert detail["heatmap"]["cells"] == [["0.1", "0.3"], ["-0.2", None]]

    cancelled = as_owner.post(f"{url}/{created['id']}/cancel")
    assert cancelled.status_code == 200
    assert (cancelled.json()["state"], cancelled.json()["progress"]["cancelled"]) == (
        "cancelled", 1)
    again = as_owner.post(f"{url}/{created['id']}/cancel")
    assert (again.status_code, again.json()["code"]) == (409, "SWEEP_ENDED")


def test_a_heatmap_axis_that_is_not_swept_is_refused(as_owner, url, body):
    created = as_owner.post(url, body, format="json").json()

    response = as_owner.get(f"{url}/{created['id']}?x=quantity")

    assert response.json() == {"code": "VALIDATION_ERROR",
                               "message": "The sweep has invalid fields; see details.",
                               "details": {"x": ["Not a swept parameter; one of fast, slow."]}}


def test_another_workspace_sees_none_of_it_and_cannot_use_its_version(
        as_owner, url, body, api_client, stranger, stranger_workspace):
    created = as_owner.post(url, body, format="json").json()
    from rest_framework.test import APIClient

    other = APIClient()
    other.force_login(stranger)
    theirs = f"/api/v1/workspaces/{stranger_workspace.pk}/sweeps"

    assert other.get(theirs).json() == []
    for method, path in (("get", f"{theirs}/{created['id']}"),
                         ("post", f"{theirs}/{created['id']}/cancel")):
        response = getattr(other, method)(path)
        assert (response.status_code, response.json()["code"]) == (404, "NOT_FOUND")
    response = other.post(theirs, body, format="json")
    assert (response.status_code, response.json()["code"]) == (404, "NOT_FOUND")
    assert other.get(f"/api/v1/workspaces/{created['workspace']}/sweeps").status_code == 404
    assert Sweep.objects.get().state == "running"


def test_a_viewer_may_read_but_not_start_a_sweep(api_client, viewer, url, body):
    api_client.force_login(viewer)

    assert api_client.get(url).status_code == 200
    assert api_client.post(url, body, format="json").status_code == 403


def test_the_heatmap_of_a_1000_point_random_sweep_is_20_by_20(as_owner, url, owner, workspace,
                                                             version, daily_dataset):
    sweep = random_sweep_done(workspace=workspace, owner=owner, version=version,
                              dataset=daily_dataset)

    response = as_owner.get(f"{url}/{sweep.pk}")

    heat = response.json()["heatmap"]
    assert (len(heat["xs"]), len(heat["ys"]), heat["grouped"]) == (20, 20, True)
    assert [len(line) for line in heat["cells"]] == [20] * 20
    assert heat["xs"][:2] + heat["xs"][-1:] == [
        "1.001 to 1.05", "1.05 to 1.1", "1.948 to 1.998"]
    assert heat["ys"][:2] + heat["ys"][-1:] == [
        "10.03 to 12.03", "12.03 to 14.03", "47.95 to 49.95"]
    assert heat["cells"][0][:3] == ["0.1169", "0.1218", "0.1348"]  # best in each cell
    assert len(response.content) < 400_000  # the 1,000 points; the map adds ~15 kB


def test_the_list_reads_no_point_metrics_however_many_sweeps(
        as_owner, url, body, django_assert_max_num_queries):
    for _ in range(3):
        as_owner.post(url, body, format="json")

    with django_assert_max_num_queries(12) as captured:
        listed = as_owner.get(url).json()

    assert [s["progress"]["queued"] for s in listed] == [4, 4, 4]
    assert not any("result" in q["sql"].lower() for q in captured.captured_queries)


def test_delete_refuses_a_running_sweep_then_deletes_it_with_its_backtests(as_owner, url, body):
    created = as_owner.post(url, body, format="json").json()

    refused = as_owner.delete(f"{url}/{created['id']}")
    assert (refused.status_code, refused.json()) == (409, {
        "code": "INVALID_TRANSITION", "message": "The sweep is running: cancel it first, then "
        "delete it.", "details": {"state": "running"}})
    as_owner.post(f"{url}/{created['id']}/cancel")
    deleted = as_owner.delete(f"{url}/{created['id']}")

    assert deleted.status_code == 204
    assert (Sweep.objects.count(), TradingSession.objects.count()) == (0, 0)
    assert as_owner.get(f"{url}/{created['id']}").status_code == 404


def test_another_workspace_cannot_delete_the_sweep(as_owner, api_client, url, body, stranger,
                                                   stranger_workspace):
    created = as_owner.post(url, body, format="json").json()
    as_owner.post(f"{url}/{created['id']}/cancel")
    api_client.force_login(stranger)

    foreign = api_client.delete(f"/api/v1/workspaces/{stranger_workspace.pk}/sweeps/"
                                f"{created['id']}")

    assert (foreign.status_code, foreign.json()["code"]) == (404, "NOT_FOUND")
    assert Sweep.objects.filter(pk=created["id"]).exists()
