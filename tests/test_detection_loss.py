"""The listener's step targets and its max-pooling / filler loss."""

from __future__ import annotations

import math

import torch

from speechrnn.training.detection_loss import IGNORE, detection_loss, step_targets

NAMES = ["_silence_", "_unknown_", "yes", "no"]
STEP = 480


def _targets(tail: int = 960, lead: int = 1440):
    labels = torch.tensor([[2, 1, 0]])  # yes, an _unknown_ word, a _silence_ slot
    spans = torch.tensor([[[4800, 9600], [20000, 24000], [0, 0]]])  # (1, 3, 2) samples
    return step_targets(labels, spans, NAMES, 60, STEP, tail, lead)


def test_a_keyword_may_fire_from_its_last_lead_samples_to_its_tail() -> None:
    targets = _targets()
    region = targets.regions[0, 0].nonzero().flatten().tolist()
    assert region == list(range((9600 - 1440) // STEP, -(-(9600 + 960) // STEP)))
    assert not targets.regions[0, 1:].any()  # words that are not keywords have none
    assert targets.keywords.tolist() == [[2, IGNORE, IGNORE]]


def test_fillers_around_words_and_nothing_inside_a_keyword() -> None:
    filler = _targets().filler[0]
    assert (filler[: 4800 // STEP] == 0).all()  # before the keyword: _silence_
    assert (filler[4800 // STEP : 22] == IGNORE).all()  # the keyword and its tail: no filler
    assert (filler[22:41] == 0).all()
    assert (filler[41:50] == 1).all()  # inside the _unknown_ word (20000-24000): _unknown_
    assert (filler[50:] == 0).all()


def test_only_the_best_step_of_a_region_is_trained() -> None:
    targets = _targets()
    logits = torch.zeros(1, 60, 4, requires_grad=True)
    with torch.no_grad():
        logits[0, 18, 2] = 3.0  # the region's most confident "yes"
    loss, parts = detection_loss(logits, targets)
    loss.backward()
    region = targets.regions[0, 0]
    touched = logits.grad[0].abs().sum(-1) > 0  # (60,)
    assert touched[18] and not touched[region & (torch.arange(60) != 18)].any()
    expected = -torch.log_softmax(torch.tensor([0.0, 0.0, 3.0, 0.0]), 0)[2]
    torch.testing.assert_close(parts["keyword"], expected)
    torch.testing.assert_close(parts["filler"], torch.tensor(math.log(4)))


def test_a_perfect_detector_has_no_loss() -> None:
    targets = _targets()
    logits = torch.full((1, 60, 4), -20.0)
    steps = torch.arange(60)
    logits[0, steps, targets.filler[0].clamp(min=0)] = 20.0
    logits[0, 19, :] = torch.tensor([-20.0, -20.0, 20.0, -20.0])
    loss, _ = detection_loss(logits, targets, filler_weight=2.0)
    assert loss < 1e-6


def test_labels_without_fillers_train_keywords_only() -> None:
    names = ["yes", "no"]
    targets = step_targets(
        torch.tensor([[0]]), torch.tensor([[[960, 4800]]]), names, 20, STEP, 0, 960
    )
    assert (targets.filler == IGNORE).all() and targets.regions.any()
    loss, parts = detection_loss(torch.zeros(1, 20, 2), targets)
    torch.testing.assert_close(loss, torch.tensor(math.log(2)))
    assert parts["filler"] == 0
