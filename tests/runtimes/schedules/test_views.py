"""Dashboard pages of backtest schedules: the list (next run, last run, failures highlighted), the
create form (cron or interval, rolling or fixed window, errors kept beside the input), the detail
page with its run history linking to the backtests, and its pause, resume, run-now and delete
buttons; all reached through the current workspace."""

from __future__ import annotations

import pytest
from django.urls import reverse
from django_celery_beat.models import PeriodicTask

from runtimes.schedules import services as schedules
from runtimes.schedules.models import BacktestSchedule, ScheduleRun

pytestmark = pytest.mark.django_db


@pytest.fixture
def schedule(owner, workspace, version, daily_dataset):
    return schedules.create_schedule(workspace=workspace, created_by=owner, name="Nightly SPY",
                                     version=version, dataset=daily_dataset,
                                     cron_expression="0 6 * * 1-5", rolling_days=90)


def test_schedules_are_in_the_main_navigation(sign_in, owner, workspace):
    page = sign_in(owner, workspace).get(reverse("schedule_list")).content.decode()

    assert f'<a href="{reverse("schedule_list")}" aria-current="page">Schedules</a>' in page
    assert "No scheduled backtests yet" in page


def test_the_list_shows_cadence_window_next_run_and_highlights_a_failed_last_run(
        sign_in, owner, workspace, schedule, monkeypatch):
    import runtimes.services
    from config.errors import ApiError

    def refuse(**kwargs):
        raise ApiError("SANDBOX_UNAVAILABLE", "no sandbox")

    monkeypatch.setattr(runtimes.services, "create_hosted_backtest", refuse)
    schedules.run_schedule_now(schedule=schedule, now=schedule.created_at)

    response = sign_in(owner, workspace).get(reverse("schedule_list"))

    page = response.content.decode()
    assert response.status_code == 200
    assert reverse("schedule_detail", args=[schedule.pk]) in page
    assert "cron 0 6 * * 1-5 (UTC)" in page and "the last 90 days of the dataset" in page
    assert "Momentum v1 · SPY daily" in page
    assert '<tr class="failing">' in page and "1 failure" in page
    assert " UTC</td>" in page  # the next run time


def test_creating_a_cron_schedule_from_a_version_redirects_to_its_page(
        sign_in, owner, workspace, version, daily_dataset):
    client = sign_in(owner, workspace)
    form = client.get(f"{reverse('schedule_create')}?version={version.pk}").content.decode()
    assert f'<option value="{version.pk}" selected>Momentum v1</option>' in form

    response = client.post(reverse("schedule_create"), {
        "name": "Weekdays", "version": version.pk, "dataset": daily_dataset.pk, "symbols": "",
        "cadence": "cron", "cron_expression": "30 7 * * 1-5", "interval_minutes": "",
        "window": "rolling", "rolling_days": "30", "initial_cash": "100000",
        "slippage_bps": "0", "params": "{}"})

    schedule = BacktestSchedule.objects.get()
    assert response["Location"] == reverse("schedule_detail", args=[schedule.pk])
    assert (schedule.cron_expression, schedule.interval_minutes, schedule.rolling_days) == (
        "30 7 * * 1-5", None, 30)


def test_an_interval_with_fixed_dates_is_created_too(sign_in, owner, workspace, version,
                                                     daily_dataset):
    sign_in(owner, workspace).post(reverse("schedule_create"), {
        "name": "Hourly", "version": version.pk, "dataset": daily_dataset.pk,
        "cadence": "interval", "cron_expression": "0 6 * * 1-5", "interval_minutes": "60",
        "window": "fixed", "rolling_days": "90", "start": "2021-02-01T00:00",
        "end": "2021-03-01T00:00", "initial_cash": "100000", "slippage_bps": "0",
        "commission_percent": "0.1", "params": '{"fast": 5}'})

    schedule = BacktestSchedule.objects.get()
    assert (schedule.cron_expression, schedule.interval_minutes, schedule.rolling_days) == (
        "", 60, None)
    assert (schedule.start.isoformat(), schedule.end.isoformat()) == (
        "2021-02-01T00:00:00+00:00", "2021-03-01T00:00:00+00:00")
    assert (schedule.commission, schedule.params) == ({"percent": "0.1"}, {"fast": 5})


def test_a_bad_cron_expression_is_shown_beside_the_input_which_keeps_its_text(
        sign_in, owner, workspace, version, daily_dataset):
    response = sign_in(owner, workspace).post(reverse("schedule_create"), {
        "name": "Broken", "version": version.pk, "dataset": daily_dataset.pk,
        "cadence": "cron", "cron_expression": "0 25 * * *", "window": "rolling",
        "rolling_days": "30", "initial_cash": "100000", "slippage_bps": "0", "params": "{}"})

    page = response.content.decode()
    assert response.status_code == 400
    assert 'value="0 25 * * *"' in page and 'value="Broken"' in page
    assert "The cron expression&#x27;s hour field &#x27;25&#x27; is invalid" in page
    assert not BacktestSchedule.objects.exists() and not PeriodicTask.objects.exists()


def test_a_window_longer_than_the_dataset_is_shown_beside_the_days(
        sign_in, owner, workspace, version, daily_dataset):
    response = sign_in(owner, workspace).post(reverse("schedule_create"), {
        "name": "Too long", "version": version.pk, "dataset": daily_dataset.pk,
        "cadence": "interval", "interval_minutes": "60", "window": "rolling",
        "rolling_days": "365", "initial_cash": "100000", "slippage_bps": "0", "params": "{}"})

    assert response.status_code == 400
    assert response.context["form"].errors["rolling_days"] == [
        "The dataset covers 99 days (2021-01-01 to 2021-04-10); the window must fit in it."]


def _interval_form(version, dataset, **changes):
    return {"name": "Often", "version": version.pk, "dataset": dataset.pk,
            "cadence": "interval", "cron_expression": "0 6 * * 1-5", "interval_minutes": "60",
            "window": "rolling", "rolling_days": "30", "initial_cash": "100000",
            "slippage_bps": "0", "params": "{}", **changes}


@pytest.mark.parametrize("minutes,error", [
    ("4", "The interval must be at least 5 minutes."),
    ("0", "The interval must be at least 5 minutes."),
    ("-10", "The interval must be at least 5 minutes."),
    ("527041", "The interval must be at most 527040 minutes (366 days)."),
    ("", "Give the interval in minutes."),
])
def test_an_interval_out_of_bounds_is_an_error_beside_it_that_keeps_the_text(
        sign_in, owner, workspace, version, daily_dataset, minutes, error):
    response = sign_in(owner, workspace).post(
        reverse("schedule_create"), _interval_form(version, daily_dataset,
                                                   interval_minutes=minutes))

    assert response.status_code == 400
    assert response.context["form"].errors == {"interval_minutes": [error]}
    assert response.context["form"]["interval_minutes"].value() == minutes
    assert not BacktestSchedule.objects.exists()


def test_the_minimum_interval_itself_is_accepted(sign_in, owner, workspace, version,
                                                 daily_dataset):
    sign_in(owner, workspace).post(reverse("schedule_create"),
                                   _interval_form(version, daily_dataset, interval_minutes="5"))

    assert BacktestSchedule.objects.get().interval_minutes == 5


def test_an_interval_left_in_the_form_does_not_matter_when_cron_is_chosen(
        sign_in, owner, workspace, version, daily_dataset):
    # Without JavaScript both inputs are visible and sent; the chosen cadence decides.
    sign_in(owner, workspace).post(reverse("schedule_create"), _interval_form(
        version, daily_dataset, cadence="cron", interval_minutes="2"))

    schedule = BacktestSchedule.objects.get()
    assert (schedule.cron_expression, schedule.interval_minutes) == ("0 6 * * 1-5", None)


def test_the_form_marks_which_choice_each_cadence_and_window_input_belongs_to(
        sign_in, owner, workspace):
    page = sign_in(owner, workspace).get(reverse("schedule_create")).content.decode()

    for choice, value, field in [("cadence", "cron", "cron_expression"),
                                 ("cadence", "interval", "interval_minutes"),
                                 ("window", "rolling", "rolling_days"),
                                 ("window", "fixed", "start"), ("window", "fixed", "end")]:
        marker = f'<div data-shown-when="{choice}" data-shown-value="{value}">'
        assert page.index(marker) < page.index(f'name="{field}"')
        assert page.count(marker) == (2 if field in ("start", "end") else 1)
    assert "js/choice_fields.js" in page


def test_the_detail_page_lists_runs_with_links_to_their_backtests(
        sign_in, owner, workspace, schedule, hosted_calls):
    run = schedules.run_schedule_now(schedule=schedule, now=schedule.created_at)

    page = sign_in(owner, workspace).get(
        reverse("schedule_detail", args=[schedule.pk])).content.decode()

    assert "Run history" in page
    assert reverse("backtest_detail", args=[run.session_id]) in page
    assert "2021-01-10 00:00 → 2021-04-10 00:00" in page
    assert reverse("schedule_action", args=[schedule.pk, "pause"]) in page
    assert reverse("schedule_action", args=[schedule.pk, "resume"]) not in page


def test_the_buttons_pause_resume_run_and_delete(sign_in, owner, workspace, schedule,
                                                 hosted_calls):
    client = sign_in(owner, workspace)

    def press(action):
        return client.post(reverse("schedule_action", args=[schedule.pk, action]))

    press("pause")
    assert PeriodicTask.objects.get(pk=schedule.periodic_task_id).enabled is False
    page = client.get(reverse("schedule_detail", args=[schedule.pk])).content.decode()
    assert "Paused" in page and reverse("schedule_action", args=[schedule.pk, "resume"]) in page
    press("resume")
    assert PeriodicTask.objects.get(pk=schedule.periodic_task_id).enabled is True
    press("run")
    assert ScheduleRun.objects.get().status == "started"
    assert press("delete")["Location"] == reverse("schedule_list")
    assert not BacktestSchedule.objects.exists() and not PeriodicTask.objects.exists()


def test_viewers_see_schedules_but_cannot_press_buttons_and_strangers_get_404(
        sign_in, viewer, workspace, schedule, stranger, stranger_workspace):
    client = sign_in(viewer, workspace)
    assert client.get(reverse("schedule_detail", args=[schedule.pk])).status_code == 200
    assert client.post(reverse("schedule_action", args=[schedule.pk, "pause"])
                       ).status_code == 403
    assert client.get(reverse("schedule_create")).status_code == 403

    client = sign_in(stranger, stranger_workspace)
    assert client.get(reverse("schedule_detail", args=[schedule.pk])).status_code == 404
    assert client.post(reverse("schedule_action", args=[schedule.pk, "delete"])
                       ).status_code == 404
    assert BacktestSchedule.objects.filter(pk=schedule.pk, paused=False).exists()


def test_a_version_page_links_to_scheduling_it(sign_in, owner, workspace, version):
    page = sign_in(owner, workspace).get(
        reverse("version_detail", args=[version.strategy_id, 1])).content.decode()

    assert f'{reverse("schedule_create")}?version={version.pk}' in page
