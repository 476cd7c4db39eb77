"""The server process's collector once started (gc_tuning.settle), in a process of its own."""

from __future__ import annotations

import json
import subprocess
import sys

PROBE = """
import gc, json
import runwright_server.app  # what a started server holds, roughly
from runwright_server import gc_tuning
before = gc.get_threshold()
gc_tuning.settle()
frozen, after = gc.get_freeze_count(), gc.get_threshold()
gc.set_threshold(100_000_000, 10, 10)
gc_tuning.settle()  # a larger first threshold is kept
larger = gc.get_threshold()
gc.disable(); gc.set_threshold(700, 10, 10)
gc_tuning.settle()  # a disabled collector keeps its thresholds
print(json.dumps({"before": before, "frozen": frozen, "after": after, "larger": larger, "disabled": gc.get_threshold()}))
"""


def test_settle_freezes_the_started_objects_and_spaces_young_collections_out() -> None:
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True, timeout=60)
    seen = json.loads(out.stdout)
    assert seen["before"][0] == 700 and seen["frozen"] > 10_000
    from runwright_server.gc_tuning import YOUNG_THRESHOLD

    assert seen["after"] == [YOUNG_THRESHOLD, *seen["before"][1:]]
    assert seen["larger"] == [100_000_000, 10, 10]
    assert seen["disabled"] == [700, 10, 10]
