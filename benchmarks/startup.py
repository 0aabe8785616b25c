"""Start-up costs, each measured in fresh interpreters: import time, the first call's extra time and RSS."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from fetchers import Target
from measure import Figure

FIRST_CALL_PROBE = Path(__file__).resolve().parent / "first_call.py"


def run_seconds(code: str) -> float:
    begin = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True)
    return time.perf_counter() - begin


def import_time(runs: int) -> tuple[Figure, Figure, Figure]:
    """Return the start time of ``python -c pass`` and what ``import regclient_ext`` and ``import asyncio`` add to it, in ms.

    The commands alternate, and each added time is the median of the
    differences within a run, so a slow stretch of the machine hits all
    three alike. asyncio is measured alone because AsyncClient imports it
    on first use.
    """
    run_seconds("import regclient_ext")  # warm the page cache
    bare = []
    added = []
    added_by_asyncio = []
    for _ in range(runs):
        bare_seconds = run_seconds("pass")
        import_seconds = run_seconds("import regclient_ext")
        asyncio_seconds = run_seconds("import asyncio")
        bare.append(bare_seconds * 1000)
        added.append((import_seconds - bare_seconds) * 1000)
        added_by_asyncio.append((asyncio_seconds - bare_seconds) * 1000)
    return Figure.of(bare, "ms"), Figure.of(added, "ms"), Figure.of(added_by_asyncio, "ms")


def first_call(target: Target, runs: int, warm_calls: int) -> tuple[Figure, Figure]:
    """Return the first call's time over a warm call's (ms) and the RSS the first call adds (MiB)."""
    extra = []
    rss_added = []
    for _ in range(runs):
        command = [sys.executable, str(FIRST_CALL_PROBE), target.host, target.image, target.platform, str(warm_calls)]
        result = json.loads(subprocess.run(command, capture_output=True, text=True, check=True).stdout)
        extra.append((result["first"] - result["warm"]) * 1000)
        rss_added.append((result["rss_after_kib"] - result["rss_before_kib"]) / 1024)
    return Figure.of(extra, "ms"), Figure.of(rss_added, "MiB")
