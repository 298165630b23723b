"""Workspace isolation over every object endpoint of /api/v1, by session and by API key.

Owner, teammate and viewer of "Acme" versus a stranger from another workspace: the stranger gets
404 everywhere (never 403, never data); a viewer reads but gets 403 for writes.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import URLPattern, get_resolver

from accounts import api_urls
from accounts.api_permissions import WorkspaceScopedMixin
from accounts.models import Invitation, Membership
from accounts.services import invite_member
from runtimes import urls as runtimes_urls
from runtimes.schedules import urls as schedules_urls
from runtimes.schedules.models import BacktestSchedule, ScheduleRun
from strategies import api_urls as strategies_api_urls

BARS = b"timestamp,open,high,low,close,volume\n2021-04-02T00:00:00Z,1,2,0.5,1.5,10\n" \
       b"2021-04-02T00:01:00Z,1.5,2,1,1.75,12\n"


def _strategy_upload():
    return {"file": SimpleUploadedFile("main.py", b"import tektii\n"), "note": "v"}


def _dataset_upload():
    return {"name": "new bars", "file_BTCUSDT": SimpleUploadedFile("BTCUSDT.csv", BARS)}


PERSONAS = ["owner", "teammate", "viewer", "stranger"]

# (route name, method, path template, body, expected status per persona)
CASES = [
    ("api-workspace", "get", "/api/v1/workspaces/{ws}/", None, (200, 200, 200, 404)),
    ("api-members", "get", "/api/v1/workspaces/{ws}/members/", None, (200, 200, 200, 404)),
    ("api-members", "post", "/api/v1/workspaces/{ws}/members/",
     {"email": "new@example.com", "role": "member"}, (201, 403, 403, 404)),
    ("api-member", "get", "/api/v1/workspaces/{ws}/members/{member}/", None, (200, 200, 200, 404)),
    ("api-member", "patch", "/api/v1/workspaces/{ws}/members/{member}/", {"role": "viewer"},
     (200, 403, 403, 404)),
    ("api-member", "delete", "/api/v1/workspaces/{ws}/members/{member}/", None,
     (204, 403, 403, 404)),
    ("api-invitations", "get", "/api/v1/workspaces/{ws}/invitations/", None,
     (200, 200, 200, 404)),
    ("api-invitation", "get", "/api/v1/workspaces/{ws}/invitations/{invitation}/", None,
     (200, 200, 200, 404)),
    ("api-invitation", "delete", "/api/v1/workspaces/{ws}/invitations/{invitation}/", None,
     (200, 403, 403, 404)),
    ("api-invitation-resend", "post", "/api/v1/workspaces/{ws}/invitations/{invitation}/resend/",
     None, (200, 403, 403, 404)),
    ("api-keys", "get", "/api/v1/workspaces/{ws}/keys/", None, (200, 200, 200, 404)),
    ("api-keys", "post", "/api/v1/workspaces/{ws}/keys/",
     {"name": "ci", "scopes": ["read", "trade:paper"]}, (201, 201, 403, 404)),
    ("api-key", "get", "/api/v1/workspaces/{ws}/keys/{key}/", None, (200, 200, 200, 404)),
    ("api-key", "delete", "/api/v1/workspaces/{ws}/keys/{key}/", None, (200, 403, 403, 404)),
    ("api-strategies", "get", "/api/v1/workspaces/{ws}/strategies/", None, (200, 200, 200, 404)),
    ("api-strategies", "post", "/api/v1/workspaces/{ws}/strategies/", {"name": "new"},
     (201, 201, 403, 404)),
    ("api-strategy", "get", "/api/v1/workspaces/{ws}/strategies/{strategy}/", None,
     (200, 200, 200, 404)),
    # Acme's strategy and dataset are used by its schedule: editors get 409 IN_USE, not a delete.
    ("api-strategy", "delete", "/api/v1/workspaces/{ws}/strategies/{strategy}/", None,
     (409, 409, 403, 404)),
    ("api-strategy-diff", "get", "/api/v1/workspaces/{ws}/strategies/{strategy}/diff/?from=1&to=1",
     None, (200, 200, 200, 404)),
    ("api-strategy-versions", "get", "/api/v1/workspaces/{ws}/strategies/{strategy}/versions/",
     None, (200, 200, 200, 404)),
    ("api-strategy-versions", "post", "/api/v1/workspaces/{ws}/strategies/{strategy}/versions/",
     _strategy_upload, (201, 201, 403, 404)),
    ("api-strategy-version", "get", "/api/v1/workspaces/{ws}/strategies/{strategy}/versions/1/",
     None, (200, 200, 200, 404)),
    ("api-strategy-version-download", "get",
     "/api/v1/workspaces/{ws}/strategies/{strategy}/versions/1/download/", None,
     (200, 200, 200, 404)),
    ("api-strategy-version-source", "get",
     "/api/v1/workspaces/{ws}/strategies/{strategy}/versions/1/source/", None,
     (200, 200, 200, 404)),
    ("api-datasets", "get", "/api/v1/workspaces/{ws}/datasets/", None, (200, 200, 200, 404)),
    ("api-datasets", "post", "/api/v1/workspaces/{ws}/datasets/", _dataset_upload,
     (201, 201, 403, 404)),
    ("api-dataset", "get", "/api/v1/workspaces/{ws}/datasets/{dataset}/", None,
     (200, 200, 200, 404)),
    ("api-dataset", "delete", "/api/v1/workspaces/{ws}/datasets/{dataset}/", None,
     (409, 409, 403, 404)),
    ("api-dataset-preview", "get", "/api/v1/workspaces/{ws}/datasets/{dataset}/preview/", None,
     (200, 200, 200, 404)),
    ("api-schedules", "get", "/api/v1/workspaces/{ws}/schedules/", None, (200, 200, 200, 404)),
    ("api-schedules", "post", "/api/v1/workspaces/{ws}/schedules/",
     {"name": "hourly", "version": "{version}", "dataset": "{dataset}", "interval_minutes": 60,
      "start": "2021-04-02T00:00:00Z", "end": "2021-04-02T00:01:00Z"}, (201, 201, 403, 404)),
    ("api-schedule", "get", "/api/v1/workspaces/{ws}/schedules/{schedule}/", None,
     (200, 200, 200, 404)),
    ("api-schedule", "patch", "/api/v1/workspaces/{ws}/schedules/{schedule}/",
     {"name": "renamed"}, (200, 200, 403, 404)),
    ("api-schedule", "delete", "/api/v1/workspaces/{ws}/schedules/{schedule}/", None,
     (204, 204, 403, 404)),
    ("api-schedule-pause", "post", "/api/v1/workspaces/{ws}/schedules/{schedule}/pause/", None,
     (200, 200, 403, 404)),
    ("api-schedule-resume", "post", "/api/v1/workspaces/{ws}/schedules/{schedule}/resume/",
     None, (200, 200, 403, 404)),
    ("api-schedule-runs", "get", "/api/v1/workspaces/{ws}/schedules/{schedule}/runs/", None,
     (200, 200, 200, 404)),
    ("api-schedule-run-now", "post", "/api/v1/workspaces/{ws}/schedules/{schedule}/run-now/",
     None, (201, 201, 403, 404)),
    ("api-backtests-compare", "get",
     "/api/v1/workspaces/{ws}/backtests/compare?ids={backtest},{other_backtest}", None,
     (200, 200, 200, 404)),
    ("api-backtests", "get", "/api/v1/workspaces/{ws}/backtests", None, (200, 200, 200, 404)),
    ("api-backtests", "post", "/api/v1/workspaces/{ws}/backtests",
     {"version": "{version}", "dataset": "{dataset}"}, (201, 201, 403, 404)),
    ("api-backtest", "get", "/api/v1/workspaces/{ws}/backtests/{hosted_backtest}", None,
     (200, 200, 200, 404)),
]


@pytest.fixture
def acme(owner, workspace, teammate, viewer, stranger, make_api_key, settings):
    """Acme with one object of each kind: a member (teammate), an invitation, the owner's key,
    a strategy with one version, a dataset, an hourly backtest schedule, two finished backtests,
    a hosted backtest (never run here)."""
    from runtimes.schedules.services import create_schedule
    from runtimes.services import create_hosted_backtest
    from strategies.services import upload_dataset, upload_strategy_version
    from tests.runtimes.results import completed_session, synthetic_result

    settings.SANDBOX_ALLOW_UNSANDBOXED = True  # creating a hosted backtest needs no bubblewrap
    invitation, _ = invite_member(workspace=workspace, invited_by=owner,
                                  email="pending@example.com", role="viewer")
    target_key, _ = make_api_key(owner, workspace, scopes=["read"], name="owner's target key")
    version = upload_strategy_version(workspace=workspace, author=owner, strategy="Acme SMA",
                                      filename="main.py", content=b"import tektii\n")
    dataset = upload_dataset(workspace=workspace, by=owner, name="Acme bars",
                             files={"BTCUSDT": ("BTCUSDT.csv", BARS)})
    schedule = create_schedule(workspace=workspace, created_by=owner, name="Acme hourly",
                               version=version, dataset=dataset, interval_minutes=60,
                               start=datetime(2021, 4, 2, tzinfo=UTC),
                               end=datetime(2021, 4, 2, 0, 1, tzinfo=UTC))
    backtests = [completed_session(workspace=workspace, by=owner, dataset=dataset)
                 for _ in range(2)]
    for backtest in backtests:
        synthetic_result(backtest, trades=4)
    hosted = create_hosted_backtest(workspace=workspace, created_by=owner, version=version,
                                    dataset=dataset)
    return {
        "ws": workspace.pk,
        "hosted_backtest": hosted.pk,
        "member": Membership.objects.get(workspace=workspace, user=teammate).pk,
        "key": target_key.pk,
        "invitation": invitation.pk,
        "strategy": version.strategy_id,
        "dataset": dataset.pk,
        "version": version.pk,
        "schedule": schedule.pk,
        "backtest": backtests[0].pk,
        "other_backtest": backtests[1].pk,
        "users": {"owner": owner, "teammate": teammate, "viewer": viewer, "stranger": stranger},
    }


def _authenticate(api_client, mode, persona, acme, stranger_workspace, make_api_key):
    user = acme["users"][persona]
    if mode == "session":
        api_client.force_login(user)
        return
    home = stranger_workspace if persona == "stranger" else acme_workspace(acme)
    scopes = ["read"] if persona == "viewer" else ["read", "trade:paper"]
    _, plaintext = make_api_key(user, home, scopes=scopes, name=f"{persona} key")
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {plaintext}")


def _with_ids(body, ids):
    """A JSON body whose "{name}" values are replaced by the id of acme's object of that name."""
    if body is None:
        return None
    return {k: v.format(**ids) if isinstance(v, str) else v for k, v in body.items()}


def acme_workspace(acme):
    return Membership.objects.get(pk=acme["member"]).workspace


@pytest.mark.parametrize("mode", ["session", "api_key"])
@pytest.mark.parametrize("persona_index,persona", list(enumerate(PERSONAS)))
@pytest.mark.parametrize("case", CASES, ids=[f"{c[1]}-{c[0]}" for c in CASES])
def test_every_object_endpoint_answers_each_persona_as_its_role_allows(
    api_client, acme, stranger_workspace, make_api_key, mode, persona_index, persona, case
):
    _name, method, template, body, expected = case
    _authenticate(api_client, mode, persona, acme, stranger_workspace, make_api_key)
    url = template.format(**{k: v for k, v in acme.items() if k != "users"})
    multipart = callable(body)

    ids = {k: v for k, v in acme.items() if k != "users"}
    data = body() if multipart else _with_ids(body, ids)
    response = getattr(api_client, method)(url, data, format="multipart" if multipart else "json")

    assert response.status_code == expected[persona_index], response.content
    if response.status_code >= 400:
        assert set(response.json()) == {"code", "message", "details"}
        assert response.json()["code"] == {403: "FORBIDDEN", 404: "NOT_FOUND", 409: "IN_USE"}[
            response.status_code]


def test_stranger_gets_404_for_acme_objects_even_through_their_own_workspace(
    api_client, acme, stranger, stranger_workspace
):
    api_client.force_login(stranger)
    base = f"/api/v1/workspaces/{stranger_workspace.pk}"
    for url in (f"{base}/members/{acme['member']}/", f"{base}/keys/{acme['key']}/",
                f"{base}/invitations/{acme['invitation']}/"):
        assert api_client.get(url).status_code == 404
        assert api_client.delete(url).status_code == 404
    for url in (f"{base}/strategies/{acme['strategy']}/",
                f"{base}/strategies/{acme['strategy']}/versions/",
                f"{base}/strategies/{acme['strategy']}/versions/1/download/",
                f"{base}/datasets/{acme['dataset']}/",
                f"{base}/datasets/{acme['dataset']}/preview/",
                f"{base}/schedules/{acme['schedule']}/",
                f"{base}/schedules/{acme['schedule']}/runs/",
                f"{base}/backtests/compare?ids={acme['backtest']},{acme['other_backtest']}"):
        assert api_client.get(url).status_code == 404
    for action in ("pause", "resume", "run-now"):
        url = f"{base}/schedules/{acme['schedule']}/{action}/"
        assert api_client.post(url).status_code == 404
    assert api_client.delete(f"{base}/schedules/{acme['schedule']}/").status_code == 404
    assert api_client.post(f"{base}/invitations/{acme['invitation']}/resend/").status_code == 404
    assert Invitation.objects.get(pk=acme["invitation"]).revoked_at is None
    assert Membership.objects.filter(pk=acme["member"]).exists()
    assert BacktestSchedule.objects.filter(pk=acme["schedule"], paused=False).exists()
    assert not ScheduleRun.objects.exists()


def test_stranger_lists_contain_none_of_acme_ids(api_client, acme, stranger, stranger_workspace):
    api_client.force_login(stranger)
    base = f"/api/v1/workspaces/{stranger_workspace.pk}"
    seen = {row["id"] for url in ("/api/v1/workspaces/", f"{base}/members/", f"{base}/keys/",
                                   f"{base}/invitations/", f"{base}/strategies/",
                                   f"{base}/datasets/", f"{base}/schedules/")
            for row in api_client.get(url).json()}
    assert not seen & {str(acme[k]) for k in ("ws", "member", "key", "strategy", "dataset",
                                              "schedule")}
    assert not Invitation.objects.filter(workspace=stranger_workspace).exists()


def test_a_key_of_one_workspace_cannot_reach_another_workspace_of_the_same_user(
    api_client, owner, workspace, make_api_key
):
    personal = owner.memberships.get(workspace__personal=True).workspace
    _, plaintext = make_api_key(owner, workspace, scopes=["read", "trade:paper"])
    api_client.credentials(HTTP_X_API_KEY=plaintext)

    assert api_client.get(f"/api/v1/workspaces/{workspace.pk}/").status_code == 200
    assert api_client.get(f"/api/v1/workspaces/{personal.pk}/").status_code == 404
    assert api_client.get(f"/api/v1/workspaces/{personal.pk}/keys/").status_code == 404
    listed = [row["id"] for row in api_client.get("/api/v1/workspaces/").json()]
    assert listed == [str(workspace.pk)]


def test_the_isolation_matrix_covers_every_management_api_route():
    routes = {pattern.name for urls in (api_urls, strategies_api_urls)
              for pattern in urls.urlpatterns}
    routes |= {p.name for urls in (runtimes_urls, schedules_urls) for p in urls.urlpatterns
               if (p.name or "").startswith(("api-backtest", "api-schedule"))}
    covered = {case[0] for case in CASES} | {"api-workspaces"}
    assert routes == covered


def test_every_view_with_a_workspace_in_its_url_uses_the_scoping_mixin():
    def walk(patterns, prefix=""):
        for pattern in patterns:
            if isinstance(pattern, URLPattern):
                yield prefix + str(pattern.pattern), pattern
            else:
                yield from walk(pattern.url_patterns, prefix + str(pattern.pattern))

    scoped = [(route, p) for route, p in walk(get_resolver().url_patterns)
              if route.startswith("api/") and "<uuid:workspace_id>" in route]
    assert scoped
    for route, pattern in scoped:
        view_class = getattr(pattern.callback, "cls", None)
        assert view_class is not None and issubclass(view_class, WorkspaceScopedMixin), route
