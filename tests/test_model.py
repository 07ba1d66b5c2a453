"""StackedLSTMClassifier: shapes, pooling variants, checkpoints that rebuild safely."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest
import torch

from speechrnn.checkpoint import load_checkpoint
from speechrnn.errors import CheckpointError
from speechrnn.features import FeatureConfig
from speechrnn.model import ModelConfig, StackedLSTMClassifier

LABELS = ["yes", "no", "_silence_", "_unknown_"]
PLAIN = {"conv_channels": 0, "conv_stride": 1}  # no stem: the LSTM reads MFCC frames


def _model(**kwargs) -> StackedLSTMClassifier:
    torch.manual_seed(0)
    return StackedLSTMClassifier(
        LABELS, FeatureConfig(), ModelConfig(**{**PLAIN, "hidden_size": 32, **kwargs})
    )


@pytest.mark.parametrize("pooling", ["last", "mean", "attention"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_logits_shape_for_every_variant(pooling: str, bidirectional: bool) -> None:
    model = _model(pooling=pooling, bidirectional=bidirectional, num_layers=2).eval()
    assert model(torch.randn(3, 16000)).shape == (3, len(LABELS))


def test_projection_shrinks_output() -> None:
    model = _model(proj_size=16, bidirectional=True)
    assert model.head.in_features == 32 and model(torch.randn(2, 16000)).shape == (2, 4)


@pytest.mark.parametrize("k", [2, 3])
def test_frame_stacking_groups_consecutive_frames_and_pads_the_end(k: int) -> None:
    model = _model(frame_stack=k, bidirectional=True).eval()
    feats = model.features(torch.randn(2, 16000))  # (2, 101, 40)
    stacked = model.stack(feats)  # (2, ceil(101 / k), k * 40)
    steps = -(-feats.shape[1] // k)
    assert stacked.shape == (2, steps, k * 40) and model.lstm.input_size == k * 40
    for i in (0, steps - 2):
        torch.testing.assert_close(stacked[:, i], feats[:, k * i : k * i + k].flatten(1))
    tail = feats.shape[1] - k * (steps - 1)
    assert (stacked[:, -1, tail * 40 :] == 0).all()
    torch.testing.assert_close(stacked[:, -1, : tail * 40], feats[:, k * (steps - 1) :].flatten(1))
    assert model(torch.randn(3, 16000)).shape == (3, len(LABELS))


def test_no_stacking_leaves_the_features_as_they_are() -> None:
    model = _model().eval()
    feats = model.features(torch.randn(2, 16000))  # (2, 101, 40)
    assert model.stack(feats) is feats


@pytest.mark.parametrize("stride", [1, 2, 3])
def test_conv_stem_reads_log_mel_frames_and_steps_by_its_stride(stride: int) -> None:
    model = _model(conv_channels=4, conv_stride=stride, bidirectional=True).eval()
    dct = model.mfcc.dct  # (n_mels, n_mfcc), orthonormal: the stem's log-mel is exact
    torch.testing.assert_close(dct.T @ dct, torch.eye(40))
    feats = model.features(torch.randn(2, 16000))  # (2, 101, 40)
    with torch.no_grad():
        steps = model.steps(feats)  # (2, ceil(101 / stride), 4 * 10)
        nudged = feats.clone()
        nudged[:, 50] += 1.0
        changed = (model.steps(nudged) - steps).abs().amax(dim=(0, 2)) > 0  # (steps,)
    assert steps.shape == (2, -(-101 // stride), 40) and model.lstm.input_size == 40
    # two 3x3 convolutions: a step sees the frames within 2 of its centre, stride * step
    near = [i for i in range(steps.shape[1]) if abs(stride * i - 50) <= 2]
    assert changed.nonzero().flatten().tolist() == near
    assert model(torch.randn(3, 16000)).shape == (3, len(LABELS))


@pytest.mark.parametrize("settings", [{"frame_stack": 1}, {"frame_stack": 2}, {"conv_channels": 4}])
def test_eval_is_deterministic_and_batch_independent(settings: dict) -> None:
    model = _model(**settings).eval()
    x = torch.randn(4, 16000) * 0.1
    with torch.no_grad():
        batched = model(x)
        single = torch.cat([model(x[i : i + 1]) for i in range(4)])
    torch.testing.assert_close(batched, single, atol=1e-5, rtol=1e-4)


def test_training_mode_applies_specaugment() -> None:
    model = _model(freq_masks=2, freq_mask_width=10, time_masks=2, time_mask_width=30)
    x = torch.randn(8, 16000)
    model.train()
    assert (model.features(x) == 0).any()
    model.eval()
    assert not (model.features(x) == 0).all(dim=1).any()


def test_mel_domain_masks_reach_the_log_mel_bands_not_the_coefficients() -> None:
    model = _model(freq_masks=2, freq_mask_width=10, time_masks=0, mask_domain="mel")
    x = torch.randn(8, 16000)
    torch.manual_seed(1)
    feats = model.train().features(x)  # (8, frames, n_mfcc)
    assert not (feats == 0).all(dim=1).any()  # no cepstral coefficient is zeroed
    bands = feats @ model.mfcc.dct.T  # (8, frames, n_mels)
    blank = (bands.abs() < 1e-4).all(dim=1)  # (8, n_mels): bands zero over every frame
    assert blank.any() and blank.sum(dim=1).max() <= 20
    torch.testing.assert_close(model.eval().features(x), _model().eval().features(x))


@pytest.mark.parametrize("settings", [{"pooling": "mean"}, {"conv_channels": 4, "conv_stride": 2}])
def test_standalone_checkpoint_roundtrip(tmp_path: Path, settings: dict) -> None:
    model = _model(**settings)
    model(torch.randn(4, 16000))  # training mode: the stem's batch-norm statistics move
    path = model.eval().save(tmp_path / "m.pt")
    raw = torch.load(path, weights_only=True)
    assert raw["labels"] == LABELS and all(raw["model"][k] == v for k, v in settings.items())
    loaded = load_checkpoint(path)
    x = torch.randn(2, 16000)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x))
    assert not loaded.training and loaded.labels == LABELS


def test_lightning_style_checkpoint_is_read(tmp_path: Path) -> None:
    model = _model().eval()
    meta = {k: v for k, v in model.metadata().items() if k != "format"}
    state = {f"model.{k}": v for k, v in model.state_dict().items()}
    torch.save({"state_dict": state, "speechrnn": meta, "epoch": 3}, tmp_path / "x.ckpt")
    loaded = load_checkpoint(tmp_path / "x.ckpt")
    x = torch.randn(1, 16000)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x))


class _Payload:
    def __reduce__(self):
        return (os.system, (f"touch {_Payload.marker}",))


@pytest.mark.parametrize("protocol", [2, pickle.HIGHEST_PROTOCOL])
def test_malicious_pickle_is_refused_and_not_executed(tmp_path: Path, protocol: int) -> None:
    _Payload.marker = str(tmp_path / "pwned")
    path = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {}, "speechrnn": _Payload()}, path, pickle_protocol=protocol)
    with pytest.raises(CheckpointError, match="refused"):
        load_checkpoint(path)
    assert not (tmp_path / "pwned").exists()


@pytest.mark.parametrize(
    ("content", "needle"),
    [(None, "not found"), (b"garbage" * 10, "not a readable checkpoint")],
)
def test_missing_or_corrupt_checkpoint(tmp_path: Path, content: bytes | None, needle: str) -> None:
    path = tmp_path / "m.pt"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(CheckpointError, match=needle):
        load_checkpoint(path)


def test_foreign_checkpoint_is_named(tmp_path: Path) -> None:
    torch.save({"weights": torch.zeros(2)}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="not a speechrnn checkpoint"):
        load_checkpoint(tmp_path / "other.pt")


def test_digital_silence_is_silence_in_the_model_itself() -> None:
    model = _model().eval()
    waves = torch.zeros(3, 16000)
    waves[1] = 5e-5  # below -80 dBFS: still no signal
    waves[2] = torch.randn(16000) * 0.1
    with torch.no_grad():
        probs = model(waves).softmax(-1)
    silence = LABELS.index("_silence_")
    assert probs[0, silence] > 0.999 and probs[1, silence] > 0.999
    assert probs[2, silence] < 0.999
    words_only = StackedLSTMClassifier(
        ["yes", "no"], FeatureConfig(), ModelConfig(hidden_size=8, **PLAIN)
    )
    assert words_only.eval()(torch.zeros(1, 16000)).shape == (1, 2)


@pytest.mark.parametrize(
    "settings",
    [{}, {"pooling": "attention"}, {"proj_size": 64, "conv_channels": 0}, {"frame_stack": 3},
     {"causal": True, "bidirectional": False}],
)  # fmt: skip
def test_the_declared_size_is_the_built_models(settings: dict) -> None:
    """The size check that runs before a checkpoint is built counts what the model holds."""
    from speechrnn.validation import parameter_count

    model = StackedLSTMClassifier(LABELS, FeatureConfig(), ModelConfig(**settings))
    built = sum(p.numel() for p in model.parameters())
    assert parameter_count(FeatureConfig(), ModelConfig(**settings), len(LABELS)) == built
