"""The speechrnn-download summary: clips per split and label, cache size and place."""

from __future__ import annotations

import numpy as np

from speechrnn.data.corpus import Corpus
from speechrnn.data.settings import DataConfig
from speechrnn.data.splits import eval_plan, training_plan
from speechrnn.labels import SILENCE, SPLITS, UNKNOWN


def label_counts(corpus: Corpus, data: DataConfig) -> tuple[list[str], dict[str, np.ndarray]]:
    """Clips per label and split as training sees them (train: one epoch's draw)."""
    labels = corpus.labels(data)
    counts = {}
    for split in SPLITS:
        if split == "train":
            cached = corpus.split(split)
            plan = training_plan(cached.words, labels, data)
            rows = plan.train_rows(seed=0, epoch=0)
            targets = np.where(rows >= 0, plan.targets[rows.clip(min=0)], plan.silence_target)
        else:
            _, plan = eval_plan(corpus, split, labels, data)
            rows = plan.eval_rows(seed=0)
            silence = np.full(plan.n_silence, plan.silence_target)
            targets = np.concatenate([plan.targets[rows], silence])
        counts[split] = np.bincount(targets, minlength=len(labels))
    return labels, counts


def print_summary(corpus: Corpus, data: DataConfig) -> None:
    from rich.console import Console
    from rich.table import Table

    labels, counts = label_counts(corpus, data)
    table = Table(title=f"{data.name}: {corpus.root}")
    table.add_column("label")
    for split in SPLITS:
        table.add_column(split, justify="right")
    for i, label in enumerate(labels):
        table.add_row(label, *(str(counts[s][i]) for s in SPLITS))
    table.add_row("total", *(str(counts[s].sum()) for s in SPLITS), style="bold")
    console = Console()
    console.print(table)
    notes = []
    if UNKNOWN in labels:
        notes.append("train _unknown_ is redrawn each epoch from the words outside the task")
    if SILENCE in labels:
        notes.append("_silence_ is cut from _background_noise_ at levels up to full scale")
    skipped = sum(len(corpus.split(s).skipped) for s in SPLITS)
    if skipped:
        notes.append(f"{skipped} clips could not be decoded and were skipped")
    files = [f for f in corpus.cache_dir.iterdir() if f.is_file()]
    size = sum(f.stat().st_size for f in files) / 2**20
    notes.append(f"cache: {corpus.cache_dir} ({size:,.1f} MiB)")
    for note in notes:
        console.print(note)
