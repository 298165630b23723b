"""The management API of strategies, versions and datasets: uploads over multipart, the error
envelope with every problem, downloads byte for byte, previews; roles and strangers."""

from __future__ import annotations

import hashlib

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from strategies.models import Dataset, Strategy, StrategyVersion

pytestmark = pytest.mark.django_db

CODE = b"import asyncio\nfrom tektii import AsyncTradingGateway\n"
BARS = (b"timestamp,open,high,low,close,volume\n2021-04-02T00:00:00Z,1,2,0.5,1.5,10\n"
        b"2021-04-02T00:01:00Z,1.5,2,1,1.75,12\n")


@pytest.fixture
def base(workspace):
    return f"/api/v1/workspaces/{workspace.pk}"


@pytest.fixture
def as_owner(api_client, owner):
    api_client.force_login(owner)
    return api_client


@pytest.fixture
def strategy(as_owner, base):
    return as_owner.post(f"{base}/strategies/", {"name": "SMA", "description": "10/30"},
                         format="json").json()


def upload(client, url, filename, content, note=""):
    return client.post(url, {"file": SimpleUploadedFile(filename, content), "note": note},
                       format="multipart")


def test_create_a_strategy_then_upload_list_show_download_and_read_a_version(
    as_owner, base, strategy, owner
):
    versions = f"{base}/strategies/{strategy['id']}/versions/"
    assert (strategy["name"], strategy["description"], strategy["versions"],
            strategy["latest_version"], strategy["created_by"]) == ("SMA", "10/30", 0, None,
                                                                    owner.email)

    created = upload(as_owner, versions, "sma.py", CODE, note="first try")

    assert created.status_code == 201, created.content
    body = created.json()
    assert {k: body[k] for k in ("number", "content_hash", "kind", "entry_point", "filename",
                                 "size", "note", "author")} == {
        "number": 1, "content_hash": hashlib.sha256(CODE).hexdigest(), "kind": "py",
        "entry_point": "sma.py", "filename": "sma.py", "size": len(CODE), "note": "first try",
        "author": owner.email}
    assert upload(as_owner, versions, "sma.py", CODE + b"#2\n").json()["number"] == 2
    assert [v["number"] for v in as_owner.get(versions).json()] == [2, 1]
    shown = as_owner.get(f"{base}/strategies/{strategy['id']}/").json()
    assert (shown["versions"], shown["latest_version"]) == (2, 2)
    detail = as_owner.get(f"{versions}1/").json()
    assert detail["files"] == [{"path": "sma.py", "size": len(CODE)}]
    download = as_owner.get(f"{versions}1/download/")
    assert download.status_code == 200
    assert download["Content-Disposition"] == 'attachment; filename="sma.py"'
    assert b"".join(download.streaming_content) == CODE
    assert as_owner.get(f"{versions}1/source/").json() == {"sma.py": CODE.decode()}


def test_a_refused_upload_answers_the_envelope_with_every_problem_and_stores_nothing(
    as_owner, base, strategy
):
    response = upload(as_owner, f"{base}/strategies/{strategy['id']}/versions/", "bad.py",
                      b"import requests\ndef f(:\n")

    assert response.status_code == 400
    assert response.json() == {"code": "VALIDATION_ERROR",
                               "message": "bad.py line 2: syntax error: invalid syntax",
                               "details": {"problems": [{"file": "bad.py", "line": 2,
                                           "message": "syntax error: invalid syntax"}]}}
    assert not StrategyVersion.objects.exists()


def test_an_upload_without_a_file_is_a_validation_error(as_owner, base, strategy):
    response = as_owner.post(f"{base}/strategies/{strategy['id']}/versions/", {"note": "x"},
                             format="multipart")
    assert response.status_code == 400
    assert response.json()["code"] == "VALIDATION_ERROR"
    assert set(response.json()["details"]) == {"file"}


def test_a_second_strategy_with_the_same_name_is_refused(as_owner, base, strategy):
    response = as_owner.post(f"{base}/strategies/", {"name": "SMA"}, format="json")
    assert response.status_code == 400
    assert response.json() == {"code": "VALIDATION_ERROR",
                               "message": "A strategy named 'SMA' already exists.",
                               "details": {"field": "name"}}
    assert Strategy.objects.count() == 1


def test_a_viewer_reads_versions_but_cannot_upload(api_client, base, strategy, as_owner, viewer):
    versions = f"{base}/strategies/{strategy['id']}/versions/"
    upload(as_owner, versions, "sma.py", CODE)
    api_client.force_login(viewer)

    assert api_client.get(f"{versions}1/download/").status_code == 200
    response = upload(api_client, versions, "sma.py", CODE + b"#\n")
    assert response.status_code == 403
    assert response.json()["code"] == "FORBIDDEN"
    assert StrategyVersion.objects.count() == 1


def test_a_read_only_api_key_cannot_upload(api_client, base, strategy, owner, workspace,
                                           make_api_key):
    _, key = make_api_key(owner, workspace, scopes=["read"])
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    response = upload(api_client, f"{base}/strategies/{strategy['id']}/versions/", "s.py", CODE)
    assert response.status_code == 403
    assert response.json()["details"] == {"required_scope": "trade:paper"}


def test_a_stranger_sees_404_for_every_strategy_and_dataset_url(
    api_client, base, strategy, as_owner, stranger
):
    versions = f"{base}/strategies/{strategy['id']}/versions/"
    upload(as_owner, versions, "sma.py", CODE)
    api_client.force_login(stranger)
    for url in (f"{base}/strategies/", f"{base}/strategies/{strategy['id']}/", versions,
                f"{versions}1/", f"{versions}1/download/", f"{versions}1/source/",
                f"{base}/datasets/"):
        assert api_client.get(url).status_code == 404, url
    assert upload(api_client, versions, "s.py", CODE).status_code == 404


def test_a_missing_version_number_is_404(as_owner, base, strategy):
    assert as_owner.get(f"{base}/strategies/{strategy['id']}/versions/9/").status_code == 404


def test_upload_a_dataset_with_file_fields_named_by_symbol_and_preview_it(as_owner, base):
    response = as_owner.post(f"{base}/datasets/", {
        "name": "Coins",
        "file_BTC/USDT": SimpleUploadedFile("btc.csv", BARS),
        "file": [SimpleUploadedFile("ETHUSDT.csv", BARS)],
    }, format="multipart")

    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["name"], body["timeframe"]) == ("Coins", "1m")
    assert [(f["symbol"], f["filename"], f["rows"], f["first_timestamp"], f["last_timestamp"])
            for f in body["files"]] == [
        ("BTC/USDT", "btc.csv", 2, "2021-04-02T00:00:00Z", "2021-04-02T00:01:00Z"),
        ("ETHUSDT", "ETHUSDT.csv", 2, "2021-04-02T00:00:00Z", "2021-04-02T00:01:00Z"),
    ]
    assert [d["id"] for d in as_owner.get(f"{base}/datasets/").json()] == [body["id"]]
    assert as_owner.get(f"{base}/datasets/{body['id']}/").json() == body
    preview = as_owner.get(f"{base}/datasets/{body['id']}/preview/?symbol=ETHUSDT").json()
    assert preview["symbols"] == [{
        "symbol": "ETHUSDT", "rows": 2,
        "first_bars": [
            {"timestamp": "2021-04-02T00:00:00Z", "open": "1", "high": "2", "low": "0.5",
             "close": "1.5", "volume": "10"},
            {"timestamp": "2021-04-02T00:01:00Z", "open": "1.5", "high": "2", "low": "1",
             "close": "1.75", "volume": "12"}],
        "last_bars": [
            {"timestamp": "2021-04-02T00:00:00Z", "open": "1", "high": "2", "low": "0.5",
             "close": "1.5", "volume": "10"},
            {"timestamp": "2021-04-02T00:01:00Z", "open": "1.5", "high": "2", "low": "1",
             "close": "1.75", "volume": "12"}],
        "closes": {"timestamps": ["2021-04-02T00:00:00Z", "2021-04-02T00:01:00Z"],
                   "values": ["1.5", "1.75"]},
    }]


def test_a_bad_dataset_row_is_reported_with_file_row_and_column(as_owner, base):
    bad = BARS + b"2021-04-02T00:02:00Z,1,2,0.5,,3\n"
    response = as_owner.post(f"{base}/datasets/", {
        "name": "Bad", "file_X": SimpleUploadedFile("x.csv", bad)}, format="multipart")

    assert response.status_code == 400
    assert response.json() == {"code": "VALIDATION_ERROR",
                               "message": "x.csv line 4: close is empty",
                               "details": {"problems": [{"file": "x.csv", "row": 3, "line": 4,
                                           "column": "close", "problem": "close is empty"}],
                                           "more": 0}}
    assert not Dataset.objects.exists()


def test_dataset_file_fields_must_name_one_file_per_symbol(as_owner, base):
    response = as_owner.post(f"{base}/datasets/", {
        "name": "Odd", "data": SimpleUploadedFile("x.csv", BARS),
        "file": [SimpleUploadedFile("X.csv", BARS), SimpleUploadedFile("X.parquet", BARS)],
    }, format="multipart")

    assert response.status_code == 400
    assert response.json()["details"]["problems"] == [
        {"file": "x.csv", "row": None, "line": None, "column": None,
         "problem": "unexpected file field 'data': send one file_<SYMBOL> field per symbol, "
                    "or file fields"},
        {"file": "X.parquet", "row": None, "line": None, "column": None,
         "problem": "a second file for symbol 'X'"},
    ]


def test_a_viewer_cannot_upload_a_dataset(api_client, base, viewer):
    api_client.force_login(viewer)
    response = api_client.post(f"{base}/datasets/", {
        "name": "V", "file_X": SimpleUploadedFile("x.csv", BARS)}, format="multipart")
    assert response.status_code == 403
    assert not Dataset.objects.exists()
