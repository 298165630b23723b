"""Strategy versions and datasets as services: numbering, hashes, immutability, storage, and
nothing stored when an upload is refused; the demo workspace's content."""

from __future__ import annotations

import hashlib
import io
import zipfile
from pathlib import Path

import pytest

from config.sample_data import BUNDLED_DATA_DIR
from strategies.models import Dataset, DatasetFile, ImmutableVersionError, Strategy, StrategyVersion
from strategies.previews import dataset_preview, sample_indexes
from strategies.services import (
    DatasetUploadError,
    StrategyUploadError,
    extract_strategy,
    install_demo_content,
    strategy_source,
    upload_dataset,
    upload_strategy_version,
)

pytestmark = pytest.mark.django_db

CODE = b"from tektii import AsyncTradingGateway\n"
HEADER = "timestamp,open,high,low,close,volume\n"


def stored_files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def bars_csv(closes: list[str], *, start_minute: int = 0) -> bytes:
    rows = [f"2021-04-02T00:{start_minute + i:02d}:00Z,{c},{c},{c},{c},1" for i, c in
            enumerate(closes)]
    return (HEADER + "\n".join(rows) + "\n").encode()


# -- strategy versions ---------------------------------------------------------------------------


def test_an_upload_becomes_version_1_with_the_sha256_of_its_bytes_stored_unchanged(
    workspace, owner, _private_file_storage
):
    version = upload_strategy_version(workspace=workspace, author=owner, strategy="SMA",
                                      filename="sma.py", content=CODE, note="first")

    digest = hashlib.sha256(CODE).hexdigest()
    assert (version.number, version.content_hash, version.kind, version.entry_point) == (
        1, digest, "py", "sma.py")
    assert (version.size, version.note, version.author, version.filename) == (
        len(CODE), "first", owner, "sma.py")
    assert version.strategy.name == "SMA" and version.strategy.workspace == workspace
    expected = f"workspaces/{workspace.pk}/strategies/{version.strategy_id}/{digest}.py"
    assert version.storage_name == expected
    assert stored_files(_private_file_storage) == [expected]
    assert (_private_file_storage / expected).read_bytes() == version.read_bytes() == CODE


def test_versions_are_numbered_per_strategy(workspace, owner):
    numbers = [upload_strategy_version(workspace=workspace, author=owner, strategy=name,
                                       filename="s.py", content=CODE + code).number
               for name, code in [("A", b""), ("A", b"#2"), ("B", b""), ("A", b"#3")]]
    assert numbers == [1, 2, 1, 3]
    assert Strategy.objects.for_workspace(workspace).count() == 2


def test_the_same_bytes_uploaded_twice_are_two_versions_sharing_one_file(
    workspace, owner, _private_file_storage
):
    first, second = (upload_strategy_version(workspace=workspace, author=owner, strategy="A",
                                             filename="s.py", content=CODE) for _ in range(2))
    assert (first.number, second.number) == (1, 2)
    assert first.storage_name == second.storage_name
    assert len(stored_files(_private_file_storage)) == 1


def test_a_version_cannot_be_changed_once_saved(workspace, owner):
    version = upload_strategy_version(workspace=workspace, author=owner, strategy="A",
                                      filename="s.py", content=CODE)
    version.note = "rewritten"
    with pytest.raises(ImmutableVersionError):
        version.save()
    assert StrategyVersion.objects.get(pk=version.pk).note == ""


def test_a_refused_upload_stores_nothing(workspace, owner, _private_file_storage):
    with pytest.raises(StrategyUploadError) as refused:
        upload_strategy_version(workspace=workspace, author=owner, strategy="New",
                                filename="s.py", content=b"import requests\n")

    assert refused.value.status_code == 400
    assert refused.value.message == ("s.py line 1: imports 'requests', which hosted strategies "
                                     "cannot use: the runtime has the Python standard library, "
                                     "tektii, numpy and pandas")
    message = refused.value.problems[0]["message"]
    assert refused.value.details == {"problems": [{"file": "s.py", "line": 1, "message": message}]}
    assert (Strategy.objects.count(), StrategyVersion.objects.count()) == (0, 0)
    assert stored_files(_private_file_storage) == []


def test_a_failed_insert_removes_the_file_it_had_written(
    workspace, owner, _private_file_storage, monkeypatch
):
    def refuse(**kwargs):
        raise RuntimeError("database went away")

    monkeypatch.setattr(StrategyVersion.objects, "create", refuse)
    with pytest.raises(RuntimeError):
        upload_strategy_version(workspace=workspace, author=owner, strategy="A",
                                filename="s.py", content=CODE)
    assert stored_files(_private_file_storage) == []
    assert not Strategy.objects.exists()


def test_a_strategy_of_another_workspace_is_refused(workspace, owner, stranger_workspace):
    mine = upload_strategy_version(workspace=workspace, author=owner, strategy="A",
                                   filename="s.py", content=CODE).strategy
    with pytest.raises(ValueError, match="another workspace"):
        upload_strategy_version(workspace=stranger_workspace, author=owner, strategy=mine,
                                filename="s.py", content=CODE)


def test_source_and_extraction_give_the_files_from_the_strategy_root(workspace, owner, tmp_path):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("bot/main.py", "import signals\n")
        archive.writestr("bot/signals.py", "FAST = 10\n")
        archive.writestr("bot/logo.png", b"\x89PNG\xff\xfe")
    version = upload_strategy_version(workspace=workspace, author=owner, strategy="Zip",
                                      filename="bot.zip", content=buffer.getvalue())

    assert (version.kind, version.entry_point) == ("zip", "main.py")
    assert strategy_source(version) == {"main.py": "import signals\n",
                                        "signals.py": "FAST = 10\n"}
    entry = extract_strategy(version=version, into=tmp_path / "run")
    assert entry == (tmp_path / "run" / "main.py").resolve()
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["logo.png", "main.py",
                                                                     "signals.py"]


# -- datasets ------------------------------------------------------------------------------------


def test_an_uploaded_dataset_is_validated_and_stored_in_the_workspace_files(
    workspace, owner, _private_file_storage
):
    dataset = upload_dataset(workspace=workspace, by=owner, name="Two coins", files={
        "BTCUSDT": ("btc.csv", bars_csv(["1", "2", "3"])),
        "ETH/USDT": ("eth.csv", bars_csv(["10", "11"])),
    })

    assert (dataset.timeframe, dataset.created_by) == ("1m", owner)
    files = {f.symbol: f for f in dataset.files.all()}
    assert {s: (f.rows, f.original_filename, f.size) for s, f in files.items()} == {
        "BTCUSDT": (3, "btc.csv", len(bars_csv(["1", "2", "3"]))),
        "ETH/USDT": (2, "eth.csv", len(bars_csv(["10", "11"]))),
    }
    folder = f"workspaces/{workspace.pk}/datasets/{dataset.pk}"
    assert stored_files(_private_file_storage) == [f"{folder}/BTCUSDT.csv",
                                                   f"{folder}/ETH_USDT.csv"]
    assert files["BTCUSDT"].path == str(_private_file_storage / folder / "BTCUSDT.csv")


def test_every_bad_file_of_a_dataset_upload_is_reported_with_its_row_and_nothing_is_stored(
    workspace, owner, _private_file_storage
):
    bad_close = HEADER + "2021-04-02T00:00:00Z,1,2,0.5,1.5,1\n2021-04-02T00:01:00Z,1,2,0.5,x,1\n"
    low_above_high = HEADER + "2021-04-02T00:00:00Z,1,2,3,1.5,1\n"
    with pytest.raises(DatasetUploadError) as refused:
        upload_dataset(workspace=workspace, by=owner, name="bad", files={
            "A": ("a.csv", bad_close.encode()), "B": ("b.csv", low_above_high.encode()),
            "C": ("c.csv", bars_csv(["1", "2"])), "bad symbol!": ("d.csv", b""),
        })

    assert refused.value.details["problems"] == [
        {"file": "d.csv", "row": None, "line": None, "column": "symbol", "problem":
         "symbol 'bad symbol!' must have 1 to 20 characters: letters, digits and . _ - /"},
        {"file": "a.csv", "row": 2, "line": 3, "column": "close",
         "problem": "close 'x' is not a number"},
        {"file": "b.csv", "row": 1, "line": 2, "column": "high",
         "problem": "high 2 is below low 3"},
    ]
    assert refused.value.message == ("d.csv: symbol 'bad symbol!' must have 1 to 20 characters: "
                                     "letters, digits and . _ - / (and 2 more)")
    assert (Dataset.objects.count(), DatasetFile.objects.count()) == (0, 0)
    assert stored_files(_private_file_storage) == []


def test_files_of_different_timeframes_and_a_taken_name_are_refused(workspace, owner):
    daily = (HEADER + "2021-04-02T00:00:00Z,1,1,1,1,1\n2021-04-03T00:00:00Z,1,1,1,1,1\n").encode()
    with pytest.raises(DatasetUploadError) as refused:
        upload_dataset(workspace=workspace, by=owner, name="mixed", files={
            "A": ("a.csv", bars_csv(["1", "2"])), "B": ("b.csv", daily)})
    assert refused.value.problems == [{
        "file": None, "row": None, "line": None, "column": None,
        "problem": "the files have different timeframes (a.csv: 1m, b.csv: 1d)"}]

    upload_dataset(workspace=workspace, by=owner, name="taken", files={"A": ("a.csv", daily)})
    with pytest.raises(DatasetUploadError) as refused:
        upload_dataset(workspace=workspace, by=owner, name="taken", files={"A": ("a.csv", daily)})
    assert refused.value.problems == [{"file": None, "row": None, "line": None, "column": "name",
                                       "problem": "a dataset named 'taken' already exists"}]


def test_a_preview_has_the_edge_bars_and_an_evenly_downsampled_close_series(workspace, owner):
    closes = [str(100 + i) for i in range(12)]
    dataset = upload_dataset(workspace=workspace, by=owner, name="twelve",
                             files={"X": ("x.csv", bars_csv(closes))})

    preview = dataset_preview(dataset, points=5, edge_bars=2)

    [x] = preview["symbols"]
    assert (preview["name"], preview["timeframe"], x["symbol"], x["rows"]) == (
        "twelve", "1m", "X", 12)
    assert x["first_bars"] == [
        {"timestamp": "2021-04-02T00:00:00Z", "open": "100", "high": "100", "low": "100",
         "close": "100", "volume": "1"},
        {"timestamp": "2021-04-02T00:01:00Z", "open": "101", "high": "101", "low": "101",
         "close": "101", "volume": "1"},
    ]
    assert [b["close"] for b in x["last_bars"]] == ["110", "111"]
    assert x["closes"] == {
        "timestamps": ["2021-04-02T00:00:00Z", "2021-04-02T00:03:00Z", "2021-04-02T00:06:00Z",
                       "2021-04-02T00:08:00Z", "2021-04-02T00:11:00Z"],
        "values": ["100", "103", "106", "108", "111"],
    }


def test_sample_indexes_keep_both_ends_and_never_repeat():
    assert sample_indexes(12, 5) == [0, 3, 6, 8, 11]
    assert sample_indexes(3, 5) == [0, 1, 2]
    assert sample_indexes(69_927, 200)[-1] == 69_926
    assert len(set(sample_indexes(69_927, 200))) == 200


# -- the demo workspace --------------------------------------------------------------------------


def test_demo_content_is_installed_once_and_skips_missing_files(
    workspace, owner, tmp_path, monkeypatch
):
    shared = tmp_path / "shared"
    (shared / "crypto-1m").mkdir(parents=True)
    (shared / "crypto-1m" / "BTCUSDT.csv").write_bytes(bars_csv(["1", "2", "3"]))
    warnings = []
    monkeypatch.setattr("strategies.services.logger.warning",
                        lambda message, *args: warnings.append(message % args))

    bundled = tmp_path / "empty"
    first = install_demo_content(workspace=workspace, by=owner, bundled_data=bundled,
                                 shared_data=shared)
    warned_first = len(warnings)
    second = install_demo_content(workspace=workspace, by=owner, bundled_data=bundled,
                                  shared_data=shared)

    assert first == {"strategies": ["SMA crossover", "RSI mean reversion", "Momentum rotation"],
                     "datasets": ["BTCUSDT & ETHUSDT 1m"]}
    assert second == {"strategies": [], "datasets": []}
    assert StrategyVersion.objects.for_workspace(workspace).count() == 3
    [dataset] = Dataset.objects.for_workspace(workspace)
    assert list(dataset.files.values_list("symbol", flat=True)) == ["BTCUSDT"]
    assert warnings[0] == (f"demo dataset 'BTCUSDT & ETHUSDT 1m': crypto-1m/ETHUSDT.csv is in "
                           f"neither {bundled} nor {shared}; skipped")
    assert warned_first == 1 + 29 + 1 + 1 + 2  # ETHUSDT, the stocks, SPY, SPY 1m, AAPL+MSFT


def test_demo_content_registers_the_bundled_data_without_shared_data(workspace, owner, tmp_path):
    added = install_demo_content(workspace=workspace, by=owner, shared_data=tmp_path / "absent")

    datasets = {d.name: d for d in Dataset.objects.for_workspace(workspace)}
    assert {name: (d.timeframe, d.files.count()) for name, d in datasets.items()} == {
        "BTCUSDT & ETHUSDT 1m": ("1m", 2), "US stocks daily 2013-2018": ("1d", 29),
        "SPY daily 1999-2020": ("1d", 1), "SPY 1m 2011": ("1m", 1),
        "AAPL & MSFT 1m 2021": ("1m", 2),
    }
    assert added["datasets"] == [
        "BTCUSDT & ETHUSDT 1m", "US stocks daily 2013-2018", "SPY daily 1999-2020", "SPY 1m 2011",
        "AAPL & MSFT 1m 2021"]
    crypto = datasets["BTCUSDT & ETHUSDT 1m"].files
    assert dict(crypto.values_list("symbol", "rows")) == {"BTCUSDT": 69_927, "ETHUSDT": 69_927}
    assert crypto.get(symbol="BTCUSDT").path == str(BUNDLED_DATA_DIR / "crypto-1m/BTCUSDT.csv.gz")
    versions = StrategyVersion.objects.for_workspace(workspace).select_related("strategy")
    assert {v.strategy.name: v.entry_point for v in versions} == {
        "SMA crossover": "sma_crossover.py", "RSI mean reversion": "rsi_mean_reversion.py",
        "Momentum rotation": "momentum_rotation.py"}

