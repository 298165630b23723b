"""How the session host stores a completed backtest's equity curve: JSON text built point by
point and written as it is, read back by the JSONField as the list of pairs it always was."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from runtimes.core.engine_result import EquityPoint
from runtimes.hosting.host import equity_text, write_json_text
from runtimes.models import SessionResult
from tests.runtimes.conftest import new_backtest_session

pytestmark = pytest.mark.django_db

POINTS = [
    EquityPoint(timestamp=datetime(2021, 4, 2, 0, 0, tzinfo=UTC), equity=Decimal("100000"),
                cash=Decimal("100000"), exposure=Decimal(0)),
    EquityPoint(timestamp=datetime(2021, 4, 2, 0, 1, 30, 500000, tzinfo=UTC),
                equity=Decimal("99987.125"), cash=Decimal("50000"), exposure=Decimal("49987")),
]


def test_the_equity_text_is_the_json_of_the_pairs_results_always_held():
    assert json.loads(equity_text(POINTS)) == [
        [p.timestamp.isoformat(), str(p.equity)] for p in POINTS]
    assert equity_text([]) == "[]"


def test_the_text_is_stored_as_json_and_read_back_as_the_list(owner, workspace, dataset):
    session = new_backtest_session(workspace, owner, dataset)
    row = SessionResult.objects.create(session=session, account={}, positions=[],
                                       session_info={}, orders=[], trades=[])

    write_json_text(row, "equity", equity_text(POINTS))

    assert SessionResult.objects.get(pk=row.pk).equity == [
        ["2021-04-02T00:00:00+00:00", "100000"],
        ["2021-04-02T00:01:30.500000+00:00", "99987.125"],
    ]
