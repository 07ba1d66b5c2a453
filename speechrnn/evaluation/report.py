"""Report files from computed metrics: PNG plots, CSVs, one page as Markdown and offline HTML."""

from __future__ import annotations

import base64
import csv
import html
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from speechrnn.evaluation.metrics import by_accuracy

Row = Sequence[object]


@dataclass
class Section:
    """A titled block of the report: paragraphs, then an optional table, then optional images."""

    title: str
    text: list[str] = field(default_factory=list)
    header: Row = ()
    rows: list[Row] = field(default_factory=list)
    images: list[str] = field(default_factory=list)
    audio: list[tuple[str, str]] = field(default_factory=list)  # (caption, WAV path in the dir)


def plot_confusion(matrix: np.ndarray, labels: Sequence[str], path: Path) -> None:
    import matplotlib.pyplot as plt

    totals = matrix.sum(axis=1, keepdims=True)
    norm = np.divide(matrix, totals, out=np.zeros(matrix.shape), where=totals > 0)
    size = max(5.0, 0.32 * len(labels) + 2.5)
    fig, ax = plt.subplots(figsize=(size + 1, size))
    image = ax.imshow(norm, cmap="Blues", vmin=0.0, vmax=1.0)
    ticks = np.arange(len(labels))
    ax.set_xticks(ticks, labels, rotation=90, fontsize=8)
    ax.set_yticks(ticks, labels, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if len(labels) <= 15:
        for i, j in np.ndindex(norm.shape):
            if matrix[i, j]:
                colour = "white" if norm[i, j] > 0.5 else "black"
                text = f"{norm[i, j]:.2f}"
                ax.text(j, i, text, ha="center", va="center", fontsize=7, color=colour)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="share of the true label")
    ax.set_title("Confusion matrix (row-normalised)")
    save_figure(fig, path)


def plot_per_class(scores: dict[str, dict[str, float]], path: Path) -> None:
    import matplotlib.pyplot as plt

    items = by_accuracy(scores)
    names = [k for k, _ in items]
    fig, ax = plt.subplots(figsize=(7, max(3.0, 0.28 * len(items) + 1.2)))
    ax.barh(names, [v["recall"] for _, v in items], color="#3b7dd8", label="accuracy (recall)")
    ax.plot([v["f1"] for _, v in items], names, "o", color="#d8683b", markersize=4, label="F1")
    ax.set_xlim(0, 1)
    ax.set_xlabel("share")
    ax.set_title("Per-class accuracy")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=2, fontsize=8, frameon=False)
    ax.tick_params(axis="y", labelsize=8)
    save_figure(fig, path)


def plot_calibration(reliability: list[dict[str, float]], ece: float, path: Path) -> None:
    import matplotlib.pyplot as plt

    centres = [(b["low"] + b["high"]) / 2 for b in reliability]
    width = reliability[0]["high"] - reliability[0]["low"]
    used = [b["count"] > 0 for b in reliability]
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.bar(
        [c for c, u in zip(centres, used, strict=True) if u],
        [b["accuracy"] for b, u in zip(reliability, used, strict=True) if u],
        width=width * 0.95,
        color="#3b7dd8",
        label="accuracy",
    )
    ax.plot([0, 1], [0, 1], "--", color="grey", label="perfect calibration")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("confidence")
    ax.set_ylabel("accuracy")
    ax.set_title(f"Reliability diagram (ECE {ece:.3f})")
    ax.legend(loc="upper left")
    save_figure(fig, path)


def save_figure(fig: Any, path: Path) -> None:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_learning_curves(history: dict[str, list[tuple[int, float]]], path: Path) -> None:
    """Loss and accuracy per epoch, train and validation, from `read_history`."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for ax, metric in zip(axes, ("loss", "acc"), strict=True):
        for split, style in (("train", "-o"), ("val", "-s")):
            points = history.get(f"{split}/{metric}", [])
            if points:
                ax.plot(*zip(*points, strict=True), style, ms=3, label=split)
        ax.set_xlabel("epoch")
        ax.set_title("accuracy" if metric == "acc" else "loss")
        ax.legend()
        ax.grid(alpha=0.3)
    save_figure(fig, path)


def read_history(metrics_csv: Path) -> dict[str, list[tuple[int, float]]]:
    """(epoch, value) per logged epoch metric from Lightning's CSV log (train/val loss and acc)."""
    keys = ("train/loss", "train/acc", "val/loss", "val/acc")
    history: dict[str, dict[int, float]] = {k: {} for k in keys}
    with metrics_csv.open(newline="") as handle:
        for row in csv.DictReader(handle):
            if not row.get("epoch"):
                continue
            for key in keys:
                if row.get(key):
                    history[key][int(row["epoch"])] = float(row[key])
    return {k: sorted(v.items()) for k, v in history.items() if v}


def write_wav(path: Path, wave: np.ndarray, sample_rate: int = 16_000) -> None:
    """A PCM16 WAV of int16 or float (T,) samples."""
    import soundfile as sf

    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, np.asarray(wave), sample_rate, subtype="PCM_16", format="WAV")


def write_csv(path: Path, header: Row, rows: Sequence[Row]) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)


def render_markdown(title: str, sections: Sequence[Section]) -> str:
    out = [f"# {title}", ""]
    for section in sections:
        out += [f"## {section.title}", ""]
        out += [*(f"{p}\n" for p in section.text)]
        if section.header:
            out.append("| " + " | ".join(map(str, section.header)) + " |")
            out.append("|" + "---|" * len(section.header))
            out += ["| " + " | ".join(map(str, row)) + " |" for row in section.rows]
            out.append("")
        out += [f"![{Path(img).stem}]({img})\n" for img in section.images]
        out += [f"- [{caption}]({wav})" for caption, wav in section.audio]
        out += [""] if section.audio else []
    return "\n".join(out).rstrip() + "\n"


def render_html(title: str, sections: Sequence[Section], image_dir: Path) -> str:
    """One self-contained page: images and audio are embedded as data URIs, no network needed."""
    esc = html.escape
    body = [f"<h1>{esc(title)}</h1>"]
    for section in sections:
        body.append(f"<h2>{esc(section.title)}</h2>")
        body += [f"<p>{esc(p)}</p>" for p in section.text]
        if section.header:
            head = "".join(f"<th>{esc(str(h))}</th>" for h in section.header)
            rows = "".join(
                "<tr>" + "".join(f"<td>{esc(str(c))}</td>" for c in row) + "</tr>"
                for row in section.rows
            )
            body.append(f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")
        for img in section.images:
            data = base64.b64encode((image_dir / img).read_bytes()).decode("ascii")
            body.append(f'<img alt="{esc(Path(img).stem)}" src="data:image/png;base64,{data}">')
        for caption, wav in section.audio:
            data = base64.b64encode((image_dir / wav).read_bytes()).decode("ascii")
            body.append(
                f"<figure><figcaption>{esc(caption)}</figcaption><audio controls "
                f'preload="auto" src="data:audio/wav;base64,{data}"></audio></figure>'
            )
    style = (
        "body{font-family:system-ui,sans-serif;max-width:60em;margin:2em auto;padding:0 1em}"
        "table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;"
        "padding:.2em .6em;text-align:left}img{max-width:100%;display:block;margin:1em 0}"
        "figure{margin:.4em 0}figcaption{font-size:.9em}"
    )
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{esc(title)}</title>'
        f"<style>{style}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n"
    )
