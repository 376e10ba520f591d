"""The contract tests import the scripts beside them (``regenerate``, ``regenerate_events``,
``event_samples``) as plain modules: this folder goes on ``sys.path`` once, here, as
``tests/deploy`` does for its helpers (the suite imports test files by path)."""

from __future__ import annotations

import sys
from pathlib import Path

HERE = str(Path(__file__).resolve().parent)
if HERE not in sys.path:
    sys.path.insert(0, HERE)
