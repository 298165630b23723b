"""Where the real historical data lives: ../shared/data beside the clone (PARITY_SHARED_DATA
overrides it)."""

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("PARITY_SHARED_DATA") or ROOT.parent / "shared" / "data")
