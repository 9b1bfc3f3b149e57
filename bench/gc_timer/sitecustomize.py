"""Times the garbage collector in every process started with this directory on PYTHONPATH.

Usage: PYTHONPATH=bench/gc_timer GC_TIMES=/tmp/gc-times python main.py serve
  (or, served beside another build: bench/cpu_per_request.py --api
  now=.:PYTHONPATH=$PWD/bench/gc_timer,GC_TIMES=/tmp/gc-times)

Python imports `sitecustomize` at start-up, so each worker times its collections
(`gc.callbacks`) and appends a line to GC_TIMES.<pid> each time a second of its CPU has
passed since the last line: that second's share spent collecting, and the collections by
generation (count and milliseconds) within it. Lines during a load show what collecting costs
a busy worker; bench/README.md ("Garbage collection under load") has what it measured. A
measurement only, never part of serving.
"""

from __future__ import annotations

import gc
import os
import time
from typing import Any

_PATH = os.environ.get("GC_TIMES")
_WINDOW_SECONDS = 1.0
# Within the current window, by generation: collections and CPU seconds.
_window = {generation: [0, 0.0] for generation in range(3)}
_window_started = time.process_time()
_collection_started = 0.0


def _timed(phase: str, info: dict[str, Any]) -> None:
    global _collection_started, _window_started
    now = time.process_time()
    if phase == "start":
        _collection_started = now
        return
    totals = _window[info["generation"]]
    totals[0] += 1
    totals[1] += now - _collection_started
    if now - _window_started < _WINDOW_SECONDS:
        return
    spent = now - _window_started
    collecting = sum(seconds for _, seconds in _window.values()) / spent
    counts = " ".join(f"gen{g}={n}/{s * 1000:.0f}ms" for g, (n, s) in _window.items())
    with open(f"{_PATH}.{os.getpid()}", "a") as out:
        out.write(f"cpu={spent:.2f}s collecting={collecting:.1%} {counts}\n")
    for entry in _window.values():
        entry[:] = [0, 0.0]
    _window_started = now


if _PATH:
    gc.callbacks.append(_timed)
