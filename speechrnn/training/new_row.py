"""A new head row on a frozen model: fitted on embeddings of a word's takes against negatives,
then its bias lowered until held-out negatives give the word no more than the target share."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

BIAS_STEP = 0.25  # calibration lowers the bias in these steps ...
MAX_BIAS_DROP = 30.0  # ... by this much at most


@dataclass(frozen=True)
class RowFit:
    """How a row is fitted: Adam on the whole set, L2 on the row's weights."""

    steps: int = 300
    lr: float = 0.05
    weight_decay: float = 1e-3


@dataclass(frozen=True)
class Row:
    """A fitted row: weight (D,), bias, and the calibration's figures."""

    weight: torch.Tensor
    bias: float
    bias_drop: float = 0.0
    false_accepts: float = 0.0  # share of held-out negatives the word takes at the threshold
    recall: float = 0.0  # share of held-out takes it takes at the threshold


def logits_with(
    head: nn.Linear, inputs: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor
) -> torch.Tensor:
    """(N, S, D) head inputs -> (N, S, C + 1) the old head's logits and the new row's last."""
    old = head(inputs)  # (N, S, C)
    return torch.cat([old, (inputs @ weight + bias)[..., None]], dim=-1)  # (N, S, C + 1)


def fit_row(
    head: nn.Linear, positives: torch.Tensor, negatives: torch.Tensor, fit: RowFit = RowFit()
) -> Row:
    """The new row for (P, S, D) `positives` (the word at some step) against (Q, D) negative
    rows, whose old posteriors it keeps (soft targets: the old head's softmax); the old rows
    are never changed, so every old logit is the same."""
    head = head.requires_grad_(False)
    with torch.no_grad():
        keep = head(negatives).softmax(-1)  # (Q, C) the old posteriors of the negatives
    weight = torch.zeros(positives.shape[-1], requires_grad=True)  # (D,)
    bias = torch.zeros((), requires_grad=True)
    optim = torch.optim.Adam([weight, bias], lr=fit.lr)
    for _ in range(fit.steps):
        optim.zero_grad()
        hit = logits_with(head, positives, weight, bias).log_softmax(-1)[..., -1]  # (P, S)
        rest = logits_with(head, negatives[:, None], weight, bias)[:, 0].log_softmax(-1)  # (Q, C+1)
        loss = -hit.amax(dim=1).mean() - (keep * rest[:, :-1]).sum(-1).mean()
        (loss + fit.weight_decay * weight.square().sum()).backward()
        optim.step()
    return Row(weight.detach(), float(bias.detach()))


def word_scores(head: nn.Linear, inputs: torch.Tensor, row: Row) -> np.ndarray:
    """(N, S, D) -> (N,) the word's probability where it is the top label (else 0), at the
    clip's most confident step: what a detector at any threshold would see."""
    with torch.no_grad():
        probs = logits_with(head, inputs, row.weight, torch.tensor(row.bias)).softmax(-1)
        top = probs.argmax(-1) == probs.shape[-1] - 1  # (N, S)
        return (probs[..., -1] * top).amax(dim=1).numpy()  # (N,)


def calibrate(
    head: nn.Linear,
    row: Row,
    negatives: list[torch.Tensor],
    positives: torch.Tensor,
    threshold: float,
    target: float,
) -> Row:
    """`row` with its bias lowered (never raised) in BIAS_STEP steps until at most `target` of
    the held-out `negatives` (clips as (N_i, S_i, D)) reach `threshold` as the word, with its
    recall on the (P, S, D) held-out `positives` at that bias."""
    clips = sum(n.shape[0] for n in negatives)
    allowed = int(target * clips + 1e-9)
    drop = 0.0
    while True:
        trial = Row(row.weight, row.bias - drop)
        accepted = sum(int((word_scores(head, n, trial) >= threshold).sum()) for n in negatives)
        if accepted <= allowed or drop >= MAX_BIAS_DROP:
            break
        drop += BIAS_STEP
    recall = float((word_scores(head, positives, trial) >= threshold).mean())
    return Row(row.weight, row.bias - drop, drop, accepted / max(1, clips), recall)
