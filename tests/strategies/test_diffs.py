"""The diff between two versions of a strategy: unified text exactly as `diff -u` prints it,
bounded, the declared parameters that changed; the compare page and the API endpoint; another
workspace's strategy is 404."""

from __future__ import annotations

import io
import zipfile

import pytest
from django.urls import reverse

from strategies.diffs import (
    ParameterChange,
    declared_parameters,
    parameter_changes,
    version_diff,
)
from strategies.services import upload_strategy_version

pytestmark = pytest.mark.django_db

V1 = b'''import tektii

DEFAULTS = {"symbol": None, "fast": 10, "slow": 30}


def signal(fast, slow):
    return fast > slow
'''
V2 = b'''import tektii

DEFAULTS = {"symbol": None, "fast": 12, "slow": 30, "stop": "0.02"}


def signal(fast, slow):
    return fast >= slow
'''


@pytest.fixture
def versions(workspace, owner):
    return [upload_strategy_version(workspace=workspace, author=owner, strategy="SMA",
                                    filename="sma.py", content=code) for code in (V1, V2)]


def test_the_unified_diff_and_the_changed_parameters(versions):
    diff = version_diff(*versions)

    assert diff.unified() == (
        "--- v1/sma.py\n"
        "+++ v2/sma.py\n"
        "@@ -1,7 +1,7 @@\n"
        " import tektii\n"
        " \n"
        '-DEFAULTS = {"symbol": None, "fast": 10, "slow": 30}\n'
        '+DEFAULTS = {"symbol": None, "fast": 12, "slow": 30, "stop": "0.02"}\n'
        " \n"
        " \n"
        " def signal(fast, slow):\n"
        "-    return fast > slow\n"
        "+    return fast >= slow\n")
    assert [(p.name, p.before, p.after) for p in diff.parameters] == [
        ("fast", "10", "12"), ("stop", None, '"0.02"')]
    assert diff.truncated is False


def test_files_added_and_removed_in_a_zip_and_the_bound(workspace, owner):
    def archive(files):
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as z:
            for name, text in files.items():
                z.writestr(name, text)
        return buffer.getvalue()

    old, new = (upload_strategy_version(workspace=workspace, author=owner, strategy="Zip",
                                        filename="bot.zip", content=archive(files))
                for files in ({"main.py": "x = 1\n", "gone.py": "a = 1\n"},
                              {"main.py": "x = 2\n", "new.py": "b = 2\n"}))

    diff = version_diff(old, new)
    assert [(f.path, f.status, f.lines[:2]) for f in diff.files] == [
        ("gone.py", "removed", ["--- v1/gone.py", "+++ /dev/null"]),
        ("main.py", "changed", ["--- v1/main.py", "+++ v2/main.py"]),
        ("new.py", "added", ["--- /dev/null", "+++ v2/new.py"])]
    cut = version_diff(old, new, max_lines=6)
    assert cut.truncated and sum(len(f.lines) for f in cut.files) == 6


def test_parameters_are_read_from_the_source_never_run():
    assert declared_parameters("PARAMS: dict = {'a': 1, 'b': [1, 2]}\n") == {"a": "1",
                                                                             "b": "[1, 2]"}
    assert declared_parameters("DEFAULTS = load()\n") == {}
    assert declared_parameters("def broken(:\n") == {}
    assert parameter_changes("DEFAULTS = {'a': 1}", "") == [ParameterChange("a", "1", None)]


def test_a_parameter_of_a_deep_expression_is_read_as_written_without_recursing():
    deep = " + ".join(["1"] * 1000)  # parses, but ast.unparse overflows on it

    assert declared_parameters(f"DEFAULTS = {{'a': {deep}, 'b': (\n  2)}}\n") == {
        "a": deep, "b": "2"}


def test_versions_of_two_strategies_are_not_compared(workspace, owner, versions):
    other = upload_strategy_version(workspace=workspace, author=owner, strategy="Other",
                                    filename="o.py", content=V1)
    with pytest.raises(ValueError, match="different strategies"):
        version_diff(versions[0], other)


def test_the_compare_page_shows_the_highlighted_diff_and_the_parameters(
        sign_in, owner, workspace, versions):
    client = sign_in(owner, workspace)
    url = reverse("version_compare", args=[versions[0].strategy_id])

    proposed = client.get(url).content.decode()
    page = client.get(url, {"from": 1, "to": 2}).content.decode()
    same = client.get(url, {"from": 2, "to": 2})

    assert '<option value="2" selected>v2</option>' in proposed
    assert "v1 → v2" in page
    assert '<span class="diff-del">-    return fast &gt; slow</span>' in page
    assert '<span class="diff-add">+    return fast &gt;= slow</span>' in page
    assert "<td><code>fast</code></td><td><code>10</code></td><td><code>12</code></td>" in page
    assert same.status_code == 400 and "Choose two different versions." in same.content.decode()


def test_the_api_returns_the_unified_diff(api_client, owner, workspace, versions):
    api_client.force_login(owner)
    url = f"/api/v1/workspaces/{workspace.pk}/strategies/{versions[0].strategy_id}/diff/"

    body = api_client.get(url, {"from": 1, "to": 2}).json()
    missing = api_client.get(url, {"from": 1, "to": 9})
    bad = api_client.get(url, {"from": "x", "to": 2})

    assert (body["from_version"], body["to_version"], body["truncated"]) == (1, 2, False)
    assert body["diff"] == version_diff(*versions).unified()
    assert body["parameters"] == [{"name": "fast", "from": "10", "to": "12"},
                                  {"name": "stop", "from": None, "to": '"0.02"'}]
    assert missing.status_code == 404
    assert bad.status_code == 400 and bad.json()["details"] == {"field": "from", "provided": "x"}


def test_a_stranger_gets_404_for_the_diff_of_another_workspace(
        api_client, sign_in, stranger, stranger_workspace, workspace, versions):
    strategy_id = versions[0].strategy_id
    page = sign_in(stranger, stranger_workspace).get(
        reverse("version_compare", args=[strategy_id]), {"from": 1, "to": 2})
    api_client.force_login(stranger)
    api = api_client.get(f"/api/v1/workspaces/{workspace.pk}/strategies/{strategy_id}/diff/",
                         {"from": 1, "to": 2})

    assert (page.status_code, api.status_code) == (404, 404)
    assert api.json()["code"] == "NOT_FOUND"
