"""Deleting strategies and datasets: refused while a deployment, a schedule, a running sweep or a
running session uses them (named), otherwise deleted with their versions, stored files, the
finished backtests and the ended sweeps that used them; editors only; another workspace's ids
are 404."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.urls import reverse

from runtimes.deployments import create_deployment
from runtimes.models import SessionResult, State, TradingSession
from runtimes.schedules.models import BacktestSchedule
from runtimes.schedules.services import create_schedule
from strategies.deletion import InUseError, delete_dataset, delete_strategy, strategy_deletion
from strategies.models import Dataset, DatasetFile, Strategy, StrategyVersion
from strategies.services import upload_dataset, upload_strategy_version
from tests.runtimes.results import completed_session

pytestmark = pytest.mark.django_db

CODE = b"from tektii import AsyncTradingGateway\n"
DAILY = ("timestamp,open,high,low,close,volume\n" + "".join(
    f"2021-04-{d:02d}T00:00:00Z,1,1,1,1,1\n" for d in range(1, 21))).encode()


@pytest.fixture
def membership(workspace, owner):
    return workspace.memberships.get(user=owner)


@pytest.fixture
def version(workspace, owner):
    upload_strategy_version(workspace=workspace, author=owner, strategy="SMA", filename="s.py",
                            content=CODE)
    return upload_strategy_version(workspace=workspace, author=owner, strategy="SMA",
                                   filename="s.py", content=CODE + b"# 2\n")


@pytest.fixture
def dataset(workspace, owner):
    return upload_dataset(workspace=workspace, by=owner, name="SPY",
                          files={"SPY": ("SPY.csv", DAILY)})


def schedule(workspace, owner, version, dataset, name="nightly"):
    return create_schedule(workspace=workspace, created_by=owner, name=name, version=version,
                           dataset=dataset, cron_expression="0 6 * * *", rolling_days=5)


def deployment(workspace, owner, version, name="BTC live"):
    return create_deployment(workspace=workspace, created_by=owner, role="owner", name=name,
                             platform="mock", version=version, symbols=["SPY"],
                             timeframes=["1d"])


def session_in(state, workspace, owner, dataset):
    session = completed_session(workspace=workspace, by=owner, dataset=dataset)
    TradingSession.objects.filter(pk=session.pk).update(state=state)


def stored(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


# -- refusals --------------------------------------------------------------------------------------


def test_a_strategy_used_by_a_deployment_and_a_schedule_is_refused_naming_them(
        membership, workspace, owner, version, dataset):
    deployment(workspace, owner, version)
    schedule(workspace, owner, version, dataset)

    with pytest.raises(InUseError) as refused:
        delete_strategy(membership=membership, strategy=version.strategy)

    assert (refused.value.status_code, refused.value.error_code) == (409, "IN_USE")
    assert refused.value.message == ("Cannot delete the strategy 'SMA': it is used by deployment "
                                     "'BTC live' and schedule 'nightly'. Delete or change them "
                                     "first.")
    assert refused.value.details == {"used_by": ["deployment 'BTC live'", "schedule 'nightly'"]}
    assert StrategyVersion.objects.filter(strategy=version.strategy).count() == 2


def test_a_refusal_names_five_users_of_a_kind_and_counts_the_rest(
        workspace, owner, version, dataset):
    for n in range(7):
        schedule(workspace, owner, version, dataset, name=f"s{n}")

    assert strategy_deletion(version.strategy).users == (
        "schedules 's0', 's1', 's2', 's3', 's4' and 2 more",)


def test_a_dataset_used_by_a_schedule_or_a_running_backtest_is_refused(
        membership, workspace, owner, version, dataset):
    schedule(workspace, owner, version, dataset)
    session_in(State.RUNNING, workspace, owner, dataset)

    with pytest.raises(InUseError) as refused:
        delete_dataset(membership=membership, dataset=dataset)

    assert refused.value.message == (
        "Cannot delete the dataset 'SPY': it is used by schedule 'nightly' and a session that is "
        "still running (cancel it first). Delete or change them first.")
    assert Dataset.objects.filter(pk=dataset.pk).exists()


def test_a_viewer_cannot_delete(workspace, viewer, version):
    from config.errors import ApiError

    with pytest.raises(ApiError) as refused:
        delete_strategy(membership=workspace.memberships.get(user=viewer),
                        strategy=version.strategy)
    assert refused.value.status_code == 403
    assert Strategy.objects.filter(pk=version.strategy_id).exists()


# -- deleting --------------------------------------------------------------------------------------


def test_deleting_a_strategy_takes_its_versions_files_and_finished_backtests(
        membership, workspace, owner, version, dataset, _private_file_storage,
        django_capture_on_commit_callbacks):
    session = completed_session(workspace=workspace, by=owner, dataset=dataset,
                                strategy_version=version)
    SessionResult.objects.create(session=session, metrics={"trades": 1})
    other = upload_strategy_version(workspace=workspace, author=owner, strategy="Other",
                                    filename="o.py", content=CODE)

    with django_capture_on_commit_callbacks(execute=True):
        impact = delete_strategy(membership=membership, strategy=version.strategy)

    assert (impact.versions, impact.sessions) == (2, 1)
    assert list(Strategy.objects.all()) == [other.strategy]
    assert not TradingSession.objects.exists() and not SessionResult.objects.exists()
    assert stored(_private_file_storage) == sorted([
        other.storage_name, f"workspaces/{workspace.pk}/datasets/{dataset.pk}/SPY.csv"])
    assert Dataset.objects.filter(pk=dataset.pk).exists()


def test_deleting_a_dataset_removes_its_stored_files_and_its_backtests(
        membership, workspace, owner, dataset, _private_file_storage,
        django_capture_on_commit_callbacks):
    completed_session(workspace=workspace, by=owner, dataset=dataset)
    session_in(State.FAILED, workspace, owner, dataset)

    with django_capture_on_commit_callbacks(execute=True):
        impact = delete_dataset(membership=membership, dataset=dataset)

    assert impact.sessions == 2
    assert not Dataset.objects.exists() and not DatasetFile.objects.exists()
    assert not TradingSession.objects.exists()
    assert stored(_private_file_storage) == []
    assert not (_private_file_storage / f"workspaces/{workspace.pk}/datasets/{dataset.pk}").exists()


def test_a_backtest_started_after_the_check_is_not_deleted_but_refuses_the_deletion(
        membership, workspace, owner, dataset, monkeypatch):
    from strategies import deletion

    checked = deletion.dataset_deletion

    def check_then_a_backtest_starts(row):
        impact = checked(row)  # allowed: nothing uses it yet
        session_in(State.QUEUED, workspace, owner, row)  # starting one takes no lock of ours
        return impact

    monkeypatch.setattr(deletion, "dataset_deletion", check_then_a_backtest_starts)
    completed_session(workspace=workspace, by=owner, dataset=dataset)

    # Refused because the new run was left alone: deleted with the rest, nothing would refer
    # to the dataset any more. (Here the run is in the same transaction, so it rolls back too.)
    with pytest.raises(InUseError) as refused:
        delete_dataset(membership=membership, dataset=dataset)

    assert "trading session" in refused.value.message
    assert Dataset.objects.filter(pk=dataset.pk).exists()
    assert list(TradingSession.objects.values_list("state", flat=True)) == ["completed"]


def test_deleting_a_registered_dataset_leaves_the_files_it_did_not_store(
        membership, make_dataset, django_capture_on_commit_callbacks):
    dataset = make_dataset("SPY", {"SPY": "stocks-daily/SPY.csv"}, rows=10)
    path = Path(dataset.files.get().path)

    with django_capture_on_commit_callbacks(execute=True):
        delete_dataset(membership=membership, dataset=dataset)

    assert path.exists() and not Dataset.objects.exists()


def test_deleting_a_dataset_deletes_no_schedule_of_another_dataset(
        membership, workspace, owner, version, dataset):
    kept = upload_dataset(workspace=workspace, by=owner, name="Kept",
                          files={"SPY": ("SPY.csv", DAILY)})
    schedule(workspace, owner, version, kept)

    delete_dataset(membership=membership, dataset=dataset)

    assert list(BacktestSchedule.objects.values_list("name", flat=True)) == ["nightly"]


# -- the dashboard ---------------------------------------------------------------------------------


def test_the_confirmation_counts_the_backtests_then_the_post_deletes(
        sign_in, owner, workspace, dataset):
    completed_session(workspace=workspace, by=owner, dataset=dataset)
    client = sign_in(owner, workspace)
    url = reverse("dataset_delete", args=[dataset.pk])

    page = client.get(url).content.decode()
    assert ("Backtests (and other finished runs) that used it are deleted with it, results "
            "included: <strong>1</strong> here") in page
    assert "Delete SPY and 1 backtest</button>" in page
    assert Dataset.objects.exists()

    response = client.post(url)
    assert response["Location"] == reverse("dataset_list")
    assert not Dataset.objects.exists()


def test_the_confirmation_of_a_strategy_in_use_names_its_users_and_offers_no_button(
        sign_in, owner, workspace, version, dataset):
    deployment(workspace, owner, version)
    schedule(workspace, owner, version, dataset)
    client = sign_in(owner, workspace)
    url = reverse("strategy_delete", args=[version.strategy_id])

    page = client.get(url).content.decode()
    posted = client.post(url)

    assert ("It cannot be deleted: it is used by deployment &#x27;BTC live&#x27; and schedule "
            "&#x27;nightly&#x27;.") in page
    assert "btn-danger" not in page
    assert posted.status_code == 409 and "Delete or change them first." in posted.content.decode()
    assert Strategy.objects.exists()


def test_a_viewer_gets_403_and_no_delete_link(sign_in, viewer, workspace, version, dataset):
    client = sign_in(viewer, workspace)
    detail = client.get(reverse("strategy_detail", args=[version.strategy_id])).content.decode()

    assert reverse("strategy_delete", args=[version.strategy_id]) not in detail
    assert client.post(reverse("strategy_delete", args=[version.strategy_id])).status_code == 403
    assert client.post(reverse("dataset_delete", args=[dataset.pk])).status_code == 403
    assert Strategy.objects.exists() and Dataset.objects.exists()


def test_a_stranger_gets_404_for_the_delete_pages(sign_in, stranger, stranger_workspace, version,
                                                  dataset):
    client = sign_in(stranger, stranger_workspace)
    urls = [reverse("strategy_delete", args=[version.strategy_id]),
            reverse("dataset_delete", args=[dataset.pk])]

    assert [client.get(u).status_code for u in urls] == [404, 404]
    assert [client.post(u).status_code for u in urls] == [404, 404]
    assert Strategy.objects.exists() and Dataset.objects.exists()


# -- the API ---------------------------------------------------------------------------------------


def test_api_delete_answers_204_or_the_409_envelope(api_client, owner, workspace, version,
                                                    dataset):
    schedule(workspace, owner, version, dataset)
    api_client.force_login(owner)
    base = f"/api/v1/workspaces/{workspace.pk}"

    refused = api_client.delete(f"{base}/datasets/{dataset.pk}/")
    assert refused.status_code == 409
    assert refused.json() == {
        "code": "IN_USE", "message": "Cannot delete the dataset 'SPY': it is used by schedule "
                                     "'nightly'. Delete or change them first.",
        "details": {"used_by": ["schedule 'nightly'"]}}

    BacktestSchedule.objects.get().delete()
    assert api_client.delete(f"{base}/datasets/{dataset.pk}/").status_code == 204
    assert api_client.delete(f"{base}/strategies/{version.strategy_id}/").status_code == 204
    assert not Dataset.objects.exists() and not Strategy.objects.exists()


def test_api_delete_by_a_viewer_is_403_and_by_a_stranger_404(api_client, viewer, stranger,
                                                             workspace, version, dataset):
    base = f"/api/v1/workspaces/{workspace.pk}"
    api_client.force_login(viewer)
    assert api_client.delete(f"{base}/strategies/{version.strategy_id}/").status_code == 403
    api_client.force_login(stranger)
    assert api_client.delete(f"{base}/strategies/{version.strategy_id}/").status_code == 404
    assert api_client.delete(f"{base}/datasets/{dataset.pk}/").status_code == 404
    assert Strategy.objects.exists() and Dataset.objects.exists()


# -- sweeps ----------------------------------------------------------------------------------------


def sweep_over(workspace, owner, version, dataset, *, name, state):
    """A sweep row in `state` with one point whose finished backtest ran `version` on `dataset`."""
    from runtimes.sweeps.models import Sweep, SweepPoint

    sweep = Sweep.objects.create(workspace=workspace, created_by=owner, name=name,
                                 version=version, dataset=dataset, state=state)
    session = completed_session(workspace=workspace, by=owner, dataset=dataset,
                                strategy_version=version)
    TradingSession.objects.filter(pk=session.pk).update(sweep=sweep)
    SweepPoint.objects.create(sweep=sweep, index=0, params={}, session=session)
    return sweep


def test_a_running_sweep_refuses_the_deletion_naming_it(membership, workspace, owner, version,
                                                        dataset):
    sweep_over(workspace, owner, version, dataset, name="grid A", state="running")
    sweep_over(workspace, owner, version, dataset, name="grid B", state="completed")

    with pytest.raises(InUseError) as refused:
        delete_strategy(membership=membership, strategy=version.strategy)
    with pytest.raises(InUseError) as refused_dataset:
        delete_dataset(membership=membership, dataset=dataset)

    assert refused.value.message == ("Cannot delete the strategy 'SMA': it is used by running "
                                     "sweep 'grid A' (cancel it first). Delete or change them "
                                     "first.")
    used_by = {"used_by": ["running sweep 'grid A' (cancel it first)"]}
    assert (refused.value.details, refused_dataset.value.details) == (used_by, used_by)
    assert StrategyVersion.objects.filter(strategy=version.strategy).count() == 2


def test_ended_sweeps_go_with_the_dataset_their_backtests_too(membership, workspace, owner,
                                                               version, dataset):
    from runtimes.sweeps.models import Sweep, SweepPoint

    sweep_over(workspace, owner, version, dataset, name="grid A", state="completed")
    sweep_over(workspace, owner, version, dataset, name="grid B", state="cancelled")

    impact = delete_dataset(membership=membership, dataset=dataset)

    assert (impact.allowed, impact.sweeps, impact.sessions) == (True, 2, 2)
    assert (Sweep.objects.count(), SweepPoint.objects.count(),
            TradingSession.objects.count()) == (0, 0, 0)
    assert not Dataset.objects.exists()


def test_the_confirmation_counts_the_ended_sweeps_and_names_a_running_one(
        sign_in, owner, workspace, version, dataset):
    ended = sweep_over(workspace, owner, version, dataset, name="grid A", state="completed")
    client = sign_in(owner, workspace)
    url = reverse("strategy_delete", args=[version.strategy_id])

    page = client.get(url).content.decode()
    ended.state = "running"
    ended.save(update_fields=["state"])
    refused = client.get(url).content.decode()

    assert "The <strong>1</strong> ended sweep over it is deleted too" in page
    assert ("It cannot be deleted: it is used by running sweep &#x27;grid A&#x27; (cancel it "
            "first).") in refused
    assert "btn-danger" not in refused
