"""Classification metrics from targets and probabilities (numpy): what a report is made of."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def confusion_matrix(targets: np.ndarray, predicted: np.ndarray, classes: int) -> np.ndarray:
    """(classes, classes) counts; rows are true labels, columns predicted ones."""
    matrix = np.zeros((classes, classes), dtype=np.int64)
    np.add.at(matrix, (targets, predicted), 1)
    return matrix


def top_k_accuracy(targets: np.ndarray, probs: np.ndarray, k: int) -> float:
    top = np.argsort(-probs, axis=1, kind="stable")[:, :k]  # (N, k)
    return float((top == targets[:, None]).any(axis=1).mean())


def expected_calibration_error(
    targets: np.ndarray, probs: np.ndarray, bins: int = 15
) -> tuple[float, list[dict[str, float]]]:
    """ECE over equal-width confidence bins, and the bins themselves for a reliability diagram."""
    confidence = probs.max(axis=1)  # (N,)
    correct = probs.argmax(axis=1) == targets  # (N,)
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)  # (N,)
    ece, table = 0.0, []
    for b in range(bins):
        inside = which == b
        count = int(inside.sum())
        accuracy = float(correct[inside].mean()) if count else 0.0
        mean_conf = float(confidence[inside].mean()) if count else 0.0
        ece += count / len(targets) * abs(accuracy - mean_conf)
        table.append(
            {
                "low": float(edges[b]),
                "high": float(edges[b + 1]),
                "count": count,
                "accuracy": accuracy,
                "confidence": mean_conf,
            }
        )
    return ece, table


def per_class_scores(matrix: np.ndarray, labels: Sequence[str]) -> dict[str, dict[str, float]]:
    """Precision, recall, F1 and support per label; 0 where undefined."""
    tp = np.diag(matrix).astype(np.float64)
    predicted = matrix.sum(axis=0).astype(np.float64)
    support = matrix.sum(axis=1).astype(np.float64)
    precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    recall = np.divide(tp, support, out=np.zeros_like(tp), where=support > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros_like(tp), where=denom > 0)
    return {
        label: {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
        for label, p, r, f, s in zip(labels, precision, recall, f1, support, strict=True)
    }


def averaged(scores: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
    """Macro and support-weighted means of precision/recall/F1 over classes present in the data."""
    present = {k: v for k, v in scores.items() if v["support"] > 0}
    weights = np.array([v["support"] for v in present.values()], dtype=np.float64)
    result = {}
    for kind in ("macro", "weighted"):
        w = np.ones_like(weights) if kind == "macro" else weights
        result[kind] = {
            m: float(np.average([v[m] for v in present.values()], weights=w))
            for m in ("precision", "recall", "f1")
        }
    return result


def errors_only(matrix: np.ndarray) -> np.ndarray:
    """A copy of the confusion matrix (C, C) with its diagonal zeroed: the misclassified clips."""
    off = np.array(matrix)
    np.fill_diagonal(off, 0)
    return off


def most_confused(matrix: np.ndarray, labels: Sequence[str], top: int = 10) -> list[dict[str, Any]]:
    """The off-diagonal cells with the most clips, largest first."""
    off = errors_only(matrix)
    order = np.argsort(-off, axis=None, kind="stable")[:top]
    pairs = []
    for flat in order:
        i, j = divmod(int(flat), matrix.shape[1])
        if off[i, j] == 0:
            break
        rate = off[i, j] / max(1, matrix[i].sum())
        pairs.append(
            {"true": labels[i], "predicted": labels[j], "count": int(off[i, j]), "rate": rate}
        )
    return pairs


def by_accuracy(per_class: dict[str, dict[str, float]]) -> list[tuple[str, dict[str, float]]]:
    """(label, scores) pairs, lowest accuracy (recall) first, ties by F1."""
    return sorted(per_class.items(), key=lambda kv: (kv[1]["recall"], kv[1]["f1"]))


def speaker_spread(correct: np.ndarray, speakers: Sequence[str]) -> dict[str, Any]:
    """Accuracy per speaker and its spread; clips without a speaker (silence) are left out."""
    per: dict[str, list[bool]] = {}
    for ok, speaker in zip(correct.tolist(), speakers, strict=True):
        if speaker:
            per.setdefault(speaker, []).append(ok)
    acc = {s: float(np.mean(v)) for s, v in per.items()}
    values = np.array(list(acc.values()), dtype=np.float64)
    worst = sorted(acc.items(), key=lambda kv: (kv[1], kv[0]))[:10]
    quartiles = np.percentile(values, [0, 25, 50, 75, 100]) if len(values) else np.zeros(5)
    return {
        "speakers": len(values),
        "mean": float(values.mean()) if len(values) else 0.0,
        "std": float(values.std()) if len(values) else 0.0,
        "min": float(quartiles[0]),
        "q25": float(quartiles[1]),
        "median": float(quartiles[2]),
        "q75": float(quartiles[3]),
        "max": float(quartiles[4]),
        "worst": [{"speaker": s, "accuracy": a, "clips": len(per[s])} for s, a in worst],
    }


def classification_metrics(
    targets: np.ndarray, probs: np.ndarray, labels: Sequence[str], speakers: Sequence[str]
) -> dict[str, Any]:
    """Everything metrics.json reports about predictions `probs` (N, C) for `targets` (N,)."""
    predicted = probs.argmax(axis=1)  # (N,)
    matrix = confusion_matrix(targets, predicted, len(labels))
    scores = per_class_scores(matrix, labels)
    ece, reliability = expected_calibration_error(targets, probs)
    return {
        "clips": len(targets),
        "accuracy": float((predicted == targets).mean()),
        "top3_accuracy": top_k_accuracy(targets, probs, min(3, len(labels))),
        **averaged(scores),
        "per_class": scores,
        "confusion": {"labels": list(labels), "matrix": matrix.tolist()},
        "most_confused": most_confused(matrix, labels),
        "expected_calibration_error": ece,
        "reliability": reliability,
        "per_speaker": speaker_spread(predicted == targets, speakers),
    }
