"""Registering a dataset from files, the host journal's bulk flushing, bus housekeeping."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from runtimes.core.datasets import DatasetError
from tests.runtimes.conftest import ROWS

pytestmark = pytest.mark.django_db


def test_register_dataset_records_rows_and_time_range(dataset):
    [file] = dataset.files.all()
    assert (dataset.timeframe, file.symbol, file.rows) == ("1m", "BTCUSDT", ROWS)
    assert file.first_timestamp == datetime(2021, 4, 2, 0, 0, tzinfo=UTC)
    assert file.last_timestamp == datetime(2021, 4, 2, 4, 59, tzinfo=UTC)


def test_a_bad_file_registers_nothing(workspace, tmp_path):
    from strategies.models import Dataset
    from strategies.services import register_dataset

    bad = tmp_path / "bad.csv"
    bad.write_text("timestamp,open,high,low,close,volume\n2021-04-02T00:00:00Z,1,2,0.5,x,3\n")
    with pytest.raises(DatasetError):
        register_dataset(workspace=workspace, name="bad", files={"X": bad})
    assert not Dataset.objects.for_workspace(workspace).exists()


def test_host_journal_writes_a_waiting_chunk_acked_or_not_and_later_acks_with_the_rest(
    start_backtest_row,
):
    from runtimes.hosting.host import HostJournal

    journal = HostJournal()
    journal.append_events([{"event_id": f"evt-{n}", "type": "candle"} for n in range(1, 8)])
    journal.record_ack(["evt-1", "evt-2", "evt-3", "evt-5"], "c")
    journal.flush(start_backtest_row, everything=False, chunk=8)
    assert not start_backtest_row.events.exists()  # 7 frames wait: below the chunk
    journal.flush(start_backtest_row, everything=False, chunk=7)
    assert journal.flushed == 3  # all 7 written; the acked prefix left memory
    journal.record_ack(["evt-4"], "c")
    journal.flush(start_backtest_row, everything=True)
    rows = list(start_backtest_row.events.values_list("event_id", "acked"))
    assert rows == [(f"evt-{n}", n <= 5) for n in range(1, 8)]


@pytest.fixture
def start_backtest_row(owner, workspace, dataset):
    from runtimes.models import TradingSession

    return TradingSession.objects.create(workspace=workspace, created_by=owner, dataset=dataset,
                                         symbols=["BTCUSDT"], timeframe="1m")


def test_in_process_bus_forgets_an_unhosted_session_after_a_timed_out_command():
    from runtimes.hosting.bus import BusUnavailable, InProcessBus

    bus = InProcessBus()
    with pytest.raises(BusUnavailable):
        bus.request("nobody", {"op": "account"}, timeout=0.05)
    assert bus._mailboxes == {}
