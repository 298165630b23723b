"""The host's journal: only the unflushed tail in memory, frames encoded once, resume reading
older frames back from SessionEvent."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db


@pytest.fixture
def session_row(owner, workspace, dataset):
    from runtimes.models import TradingSession

    return TradingSession.objects.create(workspace=workspace, created_by=owner, dataset=dataset,
                                         symbols=["BTCUSDT"], timeframe="1m")


def _frames(first: int, last: int) -> list[dict]:
    return [{"type": "candle", "event_id": f"evt-{n}"} for n in range(first, last + 1)]


def _text(n: int) -> str:
    return f'{{"type":"candle","event_id":"evt-{n}"}}'


def test_a_flushed_prefix_leaves_memory_and_resume_reads_it_back(session_row):
    from runtimes.hosting.host import HostJournal

    journal = HostJournal()
    journal.append_events(_frames(1, 6))
    journal.record_ack(["evt-1", "evt-2", "evt-3", "evt-4"], "c")
    journal.flush(session_row, everything=False, chunk=3)

    assert journal.flushed == 4
    assert journal.last_texts(2) == [_text(5), _text(6)]
    assert journal.texts_after("evt-2") == [_text(n) for n in range(3, 7)]
    assert journal.texts_after("evt-5") == [_text(6)]
    assert journal.unacked_texts() == [_text(5), _text(6)]
    assert journal.frames_after("evt-4") == _frames(5, 6)
    assert (journal.counts().sent, journal.counts().acked) == (6, 4)


def test_acks_count_each_journaled_id_once(session_row):
    from runtimes.hosting.host import HostJournal

    journal = HostJournal()
    journal.append_events(_frames(1, 3))
    journal.record_ack(["evt-2", "evt-2", "evt-9", "nonsense"], "c")
    journal.flush(session_row, everything=True)
    journal.record_ack(["evt-2", "evt-3"], "c")  # flushed: acked or not, nothing changes

    assert (journal.counts().sent, journal.counts().acked) == (3, 1)
    assert list(session_row.events.values_list("event_id", "acked")) == [
        ("evt-1", False), ("evt-2", True), ("evt-3", False)]


def test_every_frame_sent_is_written_within_a_second_acked_or_not(session_row):
    from runtimes.hosting.host import JOURNAL_FLUSH_SECONDS, HostJournal

    journal = HostJournal()
    journal.append_events(_frames(1, 111))
    journal.record_ack([f"evt-{n}" for n in range(1, 111)], "c")
    journal.flush(session_row, everything=False, moment=99.0)
    assert not session_row.events.exists()  # the first frames wait a second too
    journal.flush(session_row, everything=False, moment=99.0 + JOURNAL_FLUSH_SECONDS)
    journal.append_events(_frames(112, 120))
    journal.flush(session_row, everything=False, moment=100.0 + JOURNAL_FLUSH_SECONDS / 2)

    assert session_row.events.count() == 111  # then once a second
    journal.record_ack(["evt-111"], "c")
    journal.flush(session_row, everything=False, moment=100.0 + JOURNAL_FLUSH_SECONDS)
    assert list(session_row.events.filter(acked=False).values_list("event_id", flat=True)) == [
        f"evt-{n}" for n in range(112, 121)]
    assert session_row.events.count() == 120
    assert journal.texts_after("evt-110") == [_text(n) for n in range(111, 121)]
    assert journal.unacked_texts() == [_text(n) for n in range(112, 121)]


def test_a_wall_clock_journal_drops_what_it_wrote_acked_or_not_and_writes_later_acks(
    session_row,
):
    from runtimes.hosting.host import HostJournal

    journal = HostJournal(keep_unacked=False)
    journal.append_events(_frames(1, 5))
    journal.record_ack(["evt-2"], "c")
    journal.flush(session_row, everything=False, chunk=3)
    assert (journal.flushed, journal.unacked_texts()) == (5, [])
    journal.record_ack(["evt-4", "evt-9"], "c")  # evt-4 was dropped; evt-9 was never sent
    journal.append_events(_frames(6, 6))
    assert journal.texts_after("evt-3") == [_text(n) for n in range(4, 7)]
    journal.flush(session_row, everything=True)

    assert (journal.counts().sent, journal.counts().acked) == (6, 2)
    assert list(session_row.events.filter(acked=True).values_list("event_id", flat=True)
                .order_by("sequence")) == ["evt-2", "evt-4"]


class _SilentEndpoint:
    """A host endpoint nobody talks to."""

    def receive(self, timeout):
        return None


def test_the_batch_count_reaches_the_row_every_few_seconds_while_it_runs(session_row):
    from runtimes.core.datasets import load_market_data
    from runtimes.hosting.host import PROGRESS_WRITE_SECONDS, SessionHost
    from runtimes.providers.backtest import BacktestProvider

    files = {f.symbol: f.path for f in session_row.dataset.files.all()}
    engine = BacktestProvider(load_market_data(files), session_row.backtest_config())
    clock = [100.0]
    host = SessionHost(session_row, _SilentEndpoint(), engine, monotonic=lambda: clock[0])
    host.stream.start()
    for _ in range(4):
        host.stream.on_ack(list(host.stream.gate.pending))
        host.stream.pump()

    host.record_progress()
    session_row.refresh_from_db()
    assert session_row.batches == 0  # not yet: the last write was under 2 s ago
    clock[0] += PROGRESS_WRITE_SECONDS
    host.record_progress()
    session_row.refresh_from_db()
    assert session_row.batches == host.stream.batches_emitted == 5


def test_written_rows_read_back_through_the_orm_exactly(session_row):
    from runtimes.hosting.host import write_events

    write_events(session_row, [(7, "evt-7", _text(7), True), (8, "evt-8", 'é "x"\n', False)])

    assert list(session_row.events.values_list("session_id", "sequence", "event_id", "frame",
                                               "acked")) == [
        (session_row.pk, 7, "evt-7", _text(7), True),
        (session_row.pk, 8, "evt-8", 'é "x"\n', False)]
