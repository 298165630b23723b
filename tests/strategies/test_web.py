"""Dashboard pages of strategies and datasets: lists with empty states, drag-and-drop uploads
that keep the input and explain every problem, highlighted code, the dataset preview chart; all
reached through the current workspace."""

from __future__ import annotations

import json
import re

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from config.sample_data import open_series
from strategies.models import Dataset, Strategy, StrategyVersion
from strategies.services import EXAMPLES_DIR, upload_strategy_version

SMA = (EXAMPLES_DIR / "sma_crossover.py").read_bytes()


def _py(content: bytes, name: str = "sma_crossover.py") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, content, content_type="text/x-python")


def _csv(rows: int, name: str = "SPY.csv") -> SimpleUploadedFile:
    with open_series("stocks-daily/SPY.csv") as source:
        text = "".join(line for _, line in zip(range(rows + 1), source, strict=False))
    return SimpleUploadedFile(name, text.encode(), content_type="text/csv")


@pytest.fixture
def sma(owner, workspace):
    return upload_strategy_version(workspace=workspace, author=owner, strategy="SMA crossover",
                                   filename="sma_crossover.py", content=SMA, note="first")


def test_an_empty_strategy_list_says_to_upload_the_first_one_and_links_the_examples(
        sign_in, owner, workspace):
    text = sign_in(owner, workspace).get(reverse("strategy_list")).content.decode()

    assert "Upload your first strategy" in text
    assert reverse("examples") in text and reverse("strategy_upload") in text


def test_uploading_a_strategy_creates_version_1_and_shows_its_highlighted_code(
        sign_in, owner, workspace):
    client = sign_in(owner, workspace)
    response = client.post(reverse("strategy_upload"), {
        "name": "SMA crossover", "note": "from the examples", "file": _py(SMA)})

    version = StrategyVersion.objects.for_workspace(workspace).get()
    assert (version.strategy.name, version.number, version.note) == (
        "SMA crossover", 1, "from the examples")
    assert response["Location"] == reverse("version_detail", args=[version.strategy_id, 1])
    page = client.get(response["Location"]).content.decode()
    assert '<div class="hl">' in page
    assert ('<span class="k">class</span><span class="w"> </span>'
            '<span class="nc">SmaCrossover') in page
    assert reverse("version_download", args=[version.strategy_id, 1]) in page


def test_a_refused_upload_keeps_the_name_and_note_and_lists_each_problem_with_its_line(
        sign_in, owner, workspace):
    response = sign_in(owner, workspace).post(reverse("strategy_upload"), {
        "name": "Broken", "note": "try this", "file": _py(b"x = 1\ndef broken(:\n", "b.py")})

    text = response.content.decode()
    assert response.status_code == 400
    assert 'value="Broken"' in text and 'value="try this"' in text
    assert re.search(r"<code>b\.py line 2</code>: ", text)
    assert not Strategy.objects.for_workspace(workspace).exists()


def test_a_new_version_goes_to_the_strategy_it_is_uploaded_to(sign_in, owner, workspace, sma):
    client = sign_in(owner, workspace)
    response = client.post(reverse("version_upload", args=[sma.strategy_id]),
                           {"note": "second", "file": _py(SMA + b"\n# v2\n")})

    assert response["Location"] == reverse("version_detail", args=[sma.strategy_id, 2])
    detail = client.get(reverse("strategy_detail", args=[sma.strategy_id])).content.decode()
    assert "second" in detail and "first" in detail and "<strong>v2</strong>" in detail


def test_the_download_is_the_upload_exactly_as_received(sign_in, owner, workspace, sma):
    response = sign_in(owner, workspace).get(
        reverse("version_download", args=[sma.strategy_id, 1]))

    assert b"".join(response.streaming_content) == SMA
    assert 'filename="sma_crossover.py"' in response["Content-Disposition"]


def test_a_viewer_sees_no_upload_button_and_is_refused_an_upload(sign_in, viewer, workspace, sma):
    client = sign_in(viewer, workspace)
    listing = client.get(reverse("strategy_list")).content.decode()
    detail = client.get(reverse("strategy_detail", args=[sma.strategy_id])).content.decode()
    upload = client.post(reverse("strategy_upload"), {"name": "Mine", "file": _py(SMA)})
    new_version = client.post(reverse("version_upload", args=[sma.strategy_id]),
                              {"file": _py(SMA)})
    dataset = client.post(reverse("dataset_upload"), {"name": "D", "files": [_csv(5)]})

    assert reverse("strategy_upload") not in listing
    assert reverse("version_upload", args=[sma.strategy_id]) not in detail
    assert (upload.status_code, new_version.status_code, dataset.status_code) == (403, 403, 403)
    assert StrategyVersion.objects.for_workspace(workspace).count() == 1


def test_a_stranger_gets_404_for_every_strategy_page_of_another_workspace(
        sign_in, stranger, stranger_workspace, sma):
    client = sign_in(stranger, stranger_workspace)
    urls = [reverse("strategy_detail", args=[sma.strategy_id]),
            reverse("version_upload", args=[sma.strategy_id]),
            reverse("version_detail", args=[sma.strategy_id, 1]),
            reverse("version_download", args=[sma.strategy_id, 1])]

    assert [client.get(url).status_code for url in urls] == [404, 404, 404, 404]


def test_the_examples_are_public_and_downloadable(client):
    page = client.get(reverse("examples")).content.decode()
    download = client.get(reverse("example_download", args=["sma_crossover.py"]))

    assert "SMA crossover" in page and "momentum_rotation.py" in page
    assert b"".join(download.streaming_content) == SMA
    assert client.get(reverse("example_download", args=["settings.py"])).status_code == 404


def test_an_empty_dataset_list_says_how_to_add_one(sign_in, owner, workspace):
    text = sign_in(owner, workspace).get(reverse("dataset_list")).content.decode()

    assert "Upload your first dataset" in text and reverse("dataset_upload") in text


def test_uploading_a_dataset_shows_its_preview_candles_embedded_in_the_page(
        sign_in, owner, workspace):
    client = sign_in(owner, workspace)
    response = client.post(reverse("dataset_upload"), {"name": "SPY", "files": [_csv(400)]})

    dataset = Dataset.objects.for_workspace(workspace).get()
    assert response["Location"] == reverse("dataset_detail", args=[dataset.pk])
    page = client.get(response["Location"]).content.decode()
    embedded = re.search(r'<script id="dataset-candles" type="application/json">(.*?)</script>',
                         page, re.S)
    candles = json.loads(embedded.group(1))["SPY"]
    assert len(candles["time"]) == 200  # 400 bars in runs of 2
    assert candles["open"][0] == "136.5" and candles["time"][0] == 941414400
    assert 'data-chart="candles"' in page
    listing = client.get(reverse("dataset_list")).content.decode()
    assert "SPY" in listing and ">400<" in listing


def test_a_refused_dataset_keeps_its_name_and_shows_each_problem_by_file_row_and_column(
        sign_in, owner, workspace):
    bad = SimpleUploadedFile("AAPL.csv", b"timestamp,open,high,low,close,volume\n"
                             b"2020-01-02T00:00:00Z,10,11,9,10,100\n"
                             b"2020-01-03T00:00:00Z,10,abc,9,10,100\n")
    response = sign_in(owner, workspace).post(
        reverse("dataset_upload"), {"name": "Mine", "timeframe": "1d", "files": [bad]})

    text = response.content.decode()
    assert response.status_code == 400
    assert 'value="Mine"' in text and 'value="1d"' in text
    row = re.search(r"<tr><td><code>AAPL\.csv</code></td><td class=\"num\">(\d+)</td>"
                    r"<td>(\w+)</td><td>(.*?)</td></tr>", text)
    assert row.groups()[:2] == ("3", "high")  # the file's third line: the header is line 1
    assert not Dataset.objects.for_workspace(workspace).exists()


def test_a_stranger_gets_404_for_a_dataset_of_another_workspace(
        sign_in, owner, workspace, stranger, stranger_workspace, make_dataset):
    dataset = make_dataset("SPY", {"SPY": "stocks-daily/SPY.csv"}, rows=10)

    response = sign_in(stranger, stranger_workspace).get(
        reverse("dataset_detail", args=[dataset.pk]))

    assert response.status_code == 404
