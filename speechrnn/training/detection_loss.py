"""The listener's training targets per step and its loss: max-pooling over each keyword, filler
cross-entropy elsewhere (Sun et al. 2016, "Max-pooling loss training of LSTM for KWS")."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F

from speechrnn.labels import SILENCE, UNKNOWN

IGNORE = -1  # a step without a filler target


class StepTargets(NamedTuple):
    """What each step of a batch of sequences should say."""

    filler: torch.Tensor  # (B, S) int64: `_silence_` or `_unknown_` to learn there; IGNORE
    regions: torch.Tensor  # (B, K, S) bool: the steps where keyword k may fire
    keywords: torch.Tensor  # (B, K) int64: keyword k's label; IGNORE for a slot without one


def step_targets(
    labels: torch.Tensor,
    spans: torch.Tensor,
    names: Sequence[str],
    steps: int,
    step_samples: int,
    tail: int,
    lead: int,
) -> StepTargets:
    """Targets of `steps` steps (step s: samples [s * step_samples, (s + 1) * step_samples)).

    `labels` (B, K) and `spans` (B, K, 2) are the words (Mixture's): a keyword's region is
    the steps overlapping its last `lead` samples of speech or the `tail` samples after it,
    where only its best step is trained (so it fires once it has heard the word, not at its
    first sound); its earlier steps learn nothing; an `_unknown_` word's steps learn
    `_unknown_`; every other step `_silence_` (IGNORE where the labels lack that filler).
    Empty spans (start == end) mark no word.
    """
    device = labels.device
    start = torch.arange(steps, device=device) * step_samples  # (S,)
    begin, end = spans[..., :1], spans[..., 1:]  # (B, K, 1) each
    present = end > begin  # (B, K, 1)
    fillers = torch.tensor([n in (SILENCE, UNKNOWN) for n in names], device=device)  # (C,)
    keyword = ~fillers[labels] & present[..., 0]  # (B, K)
    word = keyword[..., None] & (start + step_samples > begin) & (start < end + tail)
    regions = word & (start + step_samples > torch.maximum(begin, end - lead))  # (B, K, S)
    unknown = names.index(UNKNOWN) if UNKNOWN in names else IGNORE
    in_unknown = (labels == unknown)[..., None] & (start + step_samples > begin) & (start < end)
    silence = names.index(SILENCE) if SILENCE in names else IGNORE
    filler = torch.full((labels.shape[0], steps), silence, dtype=torch.long, device=device)
    filler = filler.masked_fill(in_unknown.any(1), unknown)  # (B, S)
    filler = filler.masked_fill(word.any(1), IGNORE)  # (B, S)
    return StepTargets(filler, regions, torch.where(keyword, labels, IGNORE))


def detection_loss(
    logits: torch.Tensor, targets: StepTargets, filler_weight: float = 1.0
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """(B, S, C) step logits -> scalar loss and its two parts (detached).

    Keyword part: for each keyword, cross-entropy at the step of its region where its label's
    probability is highest (mean over keywords). Filler part: cross-entropy at every step with
    a filler target (mean over those steps), weighted by `filler_weight`.
    """
    logp = logits.log_softmax(dim=-1)  # (B, S, C)
    wanted = targets.keywords.clamp(min=0)  # (B, K)
    per_step = logp.gather(2, wanted[:, None, :].expand(-1, logp.shape[1], -1))  # (B, S, K)
    per_step = per_step.transpose(1, 2).masked_fill(~targets.regions, -torch.inf)  # (B, K, S)
    valid = (targets.keywords != IGNORE) & targets.regions.any(-1)  # (B, K)
    best = per_step.amax(-1).masked_fill(~valid, 0.0)  # (B, K)
    keyword = -best.sum() / valid.sum().clamp_min(1)
    flat = targets.filler.flatten()  # (B * S,)
    counted = (flat != IGNORE).sum()
    filler = F.cross_entropy(logits.flatten(0, 1), flat, ignore_index=IGNORE, reduction="sum")
    filler = filler / counted.clamp_min(1)
    loss = keyword + filler_weight * filler
    return loss, {"keyword": keyword.detach(), "filler": filler.detach()}
