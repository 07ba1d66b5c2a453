#!/usr/bin/env python3
"""Summarise speechrnn-train multiruns: one Markdown row per setting, mean and spread over seeds.

Reads any sweep dir: Hydra's basic launcher, submitit (local or SLURM) and Optuna trials alike
(runs with test=false show "-" for the test columns).

python scripts/sweep_table.py runs/sweeps/pooling [runs/sweeps/depth ...]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections import Counter, defaultdict
from pathlib import Path

import yaml

IGNORED = (
    "seed=",
    "data.root=",
    "data.cache_dir=",
    "hydra.",
    "+sweep=",
    "trainer=",
    "run_dir=",
    "trainer.progress_bar=",
    "evaluate=",
    "test=",
    "objective=",
)


def runs(folder: Path) -> list[tuple[str, dict[str, float]]]:
    """(setting, metrics) for every finished run below `folder`."""
    found = []
    for metrics_file in sorted(folder.rglob("metrics.json")):
        overrides_file = metrics_file.parent / ".hydra" / "overrides.yaml"
        if not overrides_file.is_file():
            continue
        overrides = yaml.safe_load(overrides_file.read_text()) or []
        setting = " ".join(sorted(o for o in overrides if not o.startswith(IGNORED)))
        found.append((setting, json.loads(metrics_file.read_text())))
    return found


def spread(values: list[float | None]) -> str:
    if not values or None in values:
        return "-"
    mean = statistics.fmean(values)
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{100 * mean:.1f} ± {100 * std:.1f}"


def table(found: list[tuple[str, dict[str, float]]]) -> str:
    """One row per setting, named by how it differs from the base: each key's commonest value."""
    parsed = [dict(o.split("=", 1) for o in setting.split()) for setting, _ in found]
    keys = sorted({k for p in parsed for k in p})
    base = {k: Counter(p.get(k) for p in parsed).most_common(1)[0][0] for k in keys}
    grouped: dict[str, list[dict[str, float]]] = defaultdict(list)
    for overrides, (_, metrics) in zip(parsed, found, strict=True):
        name = " ".join(f"{k}={overrides.get(k)}" for k in keys if overrides.get(k) != base[k])
        grouped[name or "(base)"].append(metrics)
    shared = " ".join(f"{k}={v}" for k, v in base.items() if v is not None)
    lines = [f"base: `{shared or '(defaults)'}`", ""]
    lines += [
        "| setting | seeds | val acc % | test acc % | worst test % | minutes |",
        "|---|---|---|---|---|---|",
    ]
    for setting, group in grouped.items():
        tests = [m.get("test_acc") for m in group]
        minutes = statistics.fmean(m["wall_seconds"] for m in group) / 60
        vals = spread([m["best_val_acc"] for m in group])
        worst = "-" if None in tests else f"{100 * min(tests):.1f}"  # type: ignore[type-var]
        lines.append(
            f"| `{setting}` | {len(group)} | {vals} | {spread(tests)} | {worst} | {minutes:.1f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="+", type=Path, help="multirun dirs (searched below)")
    args = parser.parse_args(argv)
    found = [run for folder in args.folders for run in runs(folder)]
    if not found:
        print(f"error: no finished runs below {', '.join(map(str, args.folders))}", file=sys.stderr)
        return 1
    print(table(found))
    return 0


if __name__ == "__main__":
    sys.exit(main())
