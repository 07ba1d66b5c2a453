"""Run many small tasks on a thread pool behind one rich progress bar; Ctrl-C cancels the rest."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from typing import Any

from speechrnn.console import counting


def default_jobs() -> int:
    """The CPU cores this process may use."""
    affinity = getattr(os, "sched_getaffinity", None)
    return len(affinity(0)) if affinity else os.cpu_count() or 1


def run_tasks(
    tasks: Sequence[Callable[[], Any]], jobs: int, label: str, progress: bool = True
) -> list[Any]:
    """Results of `tasks` in order, run `jobs` at a time; the first error cancels the rest."""
    results: list[Any] = [None] * len(tasks)
    pool = ThreadPoolExecutor(max_workers=jobs)
    try:
        with counting(label, len(tasks), progress) as advance:
            futures = {pool.submit(task): i for i, task in enumerate(tasks)}
            for future in as_completed(futures):
                results[futures[future]] = future.result()
                advance(1)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    return results
