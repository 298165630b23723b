"""The management API of backtest schedules: create with a cron expression or an interval, every
bad setting a 400 VALIDATION_ERROR naming its field, PATCH, pause and resume (the beat entry
follows), run now and the run history, delete. Roles and strangers: tests/accounts."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django_celery_beat.models import PeriodicTask

import runtimes.services
from config.errors import ApiError
from runtimes.models import TradingSession
from runtimes.schedules.models import BacktestSchedule
from strategies.services import upload_strategy_version

pytestmark = pytest.mark.django_db


@pytest.fixture
def url(workspace):
    return f"/api/v1/workspaces/{workspace.pk}/schedules/"


@pytest.fixture
def as_owner(api_client, owner):
    api_client.force_login(owner)
    return api_client


@pytest.fixture
def body(version, daily_dataset):
    return {"name": "nightly", "version": str(version.pk), "dataset": str(daily_dataset.pk),
            "cron_expression": "0 6 * * 1-5", "rolling_days": 90}


def test_creating_a_cron_schedule_answers_it_with_its_next_run(as_owner, url, body, version,
                                                                daily_dataset):
    response = as_owner.post(url, body, format="json")

    assert response.status_code == 201, response.content
    answer = response.json()
    schedule = BacktestSchedule.objects.get()
    assert answer["id"] == str(schedule.pk)
    assert {k: answer[k] for k in ("name", "cron_expression", "interval_minutes", "rolling_days",
                                   "start", "end", "timezone", "paused", "symbols", "params",
                                   "commission", "last_run")} == {
        "name": "nightly", "cron_expression": "0 6 * * 1-5", "interval_minutes": None,
        "rolling_days": 90, "start": None, "end": None, "timezone": "UTC", "paused": False,
        "symbols": [], "params": {}, "commission": {}, "last_run": None}
    assert answer["version"] == {"id": str(version.pk), "strategy": str(version.strategy_id),
                                 "strategy_name": "Momentum", "number": 1}
    assert answer["dataset"] == {"id": str(daily_dataset.pk), "name": "SPY daily"}
    next_run = datetime.fromisoformat(answer["next_run_at"])
    assert (next_run.hour, next_run.minute, next_run.isoweekday() <= 5) == (6, 0, True)
    assert as_owner.get(url).json()[0]["id"] == str(schedule.pk)


def test_creating_an_interval_schedule_with_fixed_dates(as_owner, url, body):
    body.pop("cron_expression"), body.pop("rolling_days")
    body.update(interval_minutes=120, start="2021-02-01T00:00:00Z", end="2021-03-01T00:00:00Z",
                symbols=["SPY"], initial_cash="5000", commission={"percent": "0.05"},
                params={"fast": 10})

    answer = as_owner.post(url, body, format="json").json()

    assert {k: answer[k] for k in ("cron_expression", "interval_minutes", "rolling_days",
                                   "start", "end", "symbols", "initial_cash", "commission",
                                   "params")} == {
        "cron_expression": "", "interval_minutes": 120, "rolling_days": None,
        "start": "2021-02-01T00:00:00Z", "end": "2021-03-01T00:00:00Z", "symbols": ["SPY"],
        "initial_cash": "5000.00000000", "commission": {"percent": "0.05"},
        "params": {"fast": 10}}
    assert PeriodicTask.objects.get().interval.every == 120


@pytest.mark.parametrize("change,field", [
    ({"cron_expression": "0 6 * *"}, "cron_expression"),
    ({"cron_expression": "0 24 * * *"}, "cron_expression"),
    ({"cron_expression": "", "interval_minutes": 2}, "interval_minutes"),
    ({"rolling_days": 400}, "rolling_days"),
    ({"rolling_days": None, "start": "2020-01-01T00:00:00Z", "end": "2021-02-01T00:00:00Z"},
     "start"),
    ({"symbols": ["QQQ"]}, "symbols"),
    ({"commission": {"percent": "-1"}}, "commission"),
    ({"version": "00000000-0000-0000-0000-000000000000"}, "version"),
])
def test_every_bad_setting_is_a_400_validation_error_naming_its_field(as_owner, url, body,
                                                                      change, field):
    response = as_owner.post(url, {**body, **change}, format="json")

    assert response.status_code == 400, response.content
    assert response.json()["code"] == "VALIDATION_ERROR"
    assert response.json()["details"]["field"] == field
    assert not BacktestSchedule.objects.exists() and not PeriodicTask.objects.exists()


@pytest.mark.parametrize("minutes,message", [
    (4, "The interval must be at least 5 minutes."),
    (10**12, "The interval must be at most 527040 minutes (366 days)."),
])
def test_an_interval_out_of_bounds_is_refused_in_words_by_the_api(as_owner, url, body,
                                                                  minutes, message):
    response = as_owner.post(url, {**body, "cron_expression": "", "interval_minutes": minutes},
                             format="json")

    assert response.status_code == 400
    assert response.json() == {"code": "VALIDATION_ERROR", "message": message,
                               "details": {"field": "interval_minutes"}}


@pytest.mark.parametrize("change,field,provided", [
    ({"commission": {"percent": "1e999999999"}}, "commission.percent", "1e999999999"),
    ({"commission": {"fixed": "1e-999999999"}}, "commission.fixed", "1e-999999999"),
    ({"initial_cash": "NaN"}, "initial_cash", "NaN"),
    ({"slippage_bps": "1e99"}, "slippage_bps", "1e99"),
])
def test_decimals_out_of_range_are_a_400_invalid_value_naming_the_field(as_owner, url, body,
                                                                        change, field, provided):
    response = as_owner.post(url, {**body, **change}, format="json")

    assert response.status_code == 400, response.content
    assert (response.json()["code"], response.json()["details"]) == (
        "INVALID_VALUE", {"field": field, "provided": provided})
    assert not BacktestSchedule.objects.exists()


def test_a_bad_cron_field_is_named_in_the_message(as_owner, url, body):
    answer = as_owner.post(url, {**body, "cron_expression": "0 24 * * *"}, format="json").json()

    assert answer["details"] == {"field": "cron_expression", "cron_field": "hour"}
    assert answer["message"].startswith("The cron expression's hour field '24' is invalid")


def test_a_version_of_another_workspace_is_refused_like_a_made_up_one(
        as_owner, url, body, stranger, stranger_workspace):
    theirs = upload_strategy_version(workspace=stranger_workspace, author=stranger,
                                     strategy="Theirs", filename="main.py",
                                     content=b"import tektii\n")

    answer = as_owner.post(url, {**body, "version": str(theirs.pk)}, format="json").json()

    assert answer == {"code": "VALIDATION_ERROR", "message": "No such version in this workspace.",
                      "details": {"field": "version"}}


def test_patch_pause_resume_and_delete_keep_the_beat_entry_in_step(as_owner, url, body):
    schedule_url = url + as_owner.post(url, body, format="json").json()["id"] + "/"
    task = PeriodicTask.objects.get()

    patched = as_owner.patch(schedule_url, {"interval_minutes": 30}, format="json").json()
    assert (patched["cron_expression"], patched["interval_minutes"]) == ("", 30)
    task.refresh_from_db()
    assert (task.crontab, task.interval.every) == (None, 30)

    paused = as_owner.post(schedule_url + "pause/").json()
    task.refresh_from_db()
    assert (paused["paused"], paused["next_run_at"], task.enabled) == (True, None, False)

    resumed = as_owner.post(schedule_url + "resume/").json()
    task.refresh_from_db()
    assert (resumed["paused"], task.enabled) == (False, True)

    assert as_owner.delete(schedule_url).status_code == 204
    assert not PeriodicTask.objects.exists() and not BacktestSchedule.objects.exists()
    assert as_owner.get(schedule_url).status_code == 404


def test_patch_cannot_move_a_schedule_to_another_version(as_owner, url, body, version):
    schedule_url = url + as_owner.post(url, body, format="json").json()["id"] + "/"

    answer = as_owner.patch(schedule_url, {"version": str(version.pk)}, format="json").json()

    assert (answer["code"], answer["details"]) == ("VALIDATION_ERROR", {"field": "version"})


def test_run_now_starts_a_backtest_and_the_history_lists_it(as_owner, url, body, hosted_calls):
    schedule_url = url + as_owner.post(url, body, format="json").json()["id"] + "/"

    started = as_owner.post(schedule_url + "run-now/")
    history = as_owner.get(schedule_url + "runs/").json()

    assert started.status_code == 201
    session = TradingSession.objects.get()
    assert {k: started.json()[k] for k in ("status", "error", "session", "session_state",
                                           "window_start", "window_end")} == {
        "status": "started", "error": "", "session": str(session.pk), "session_state": "created",
        "window_start": "2021-01-10T00:00:00Z", "window_end": "2021-04-10T00:00:00Z"}
    assert history["count"] == 1 and history["results"] == [started.json()]
    assert (hosted_calls[0]["start"], hosted_calls[0]["end"]) == (
        datetime(2021, 1, 10, tzinfo=UTC), datetime(2021, 4, 10, tzinfo=UTC))
    assert as_owner.get(schedule_url).json()["last_run"] == started.json()


def test_a_failed_run_now_is_a_recorded_failed_run(as_owner, url, body, monkeypatch):
    def refuse(**kwargs):
        raise ApiError("SANDBOX_UNAVAILABLE", "Hosted runs are refused here.")

    monkeypatch.setattr(runtimes.services, "create_hosted_backtest", refuse)
    schedule_url = url + as_owner.post(url, body, format="json").json()["id"] + "/"

    answer = as_owner.post(schedule_url + "run-now/").json()

    assert (answer["status"], answer["error"], answer["session"]) == (
        "failed", "Hosted runs are refused here.", None)
    assert as_owner.get(schedule_url + "runs/").json()["results"][0]["status"] == "failed"
