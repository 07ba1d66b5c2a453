"""The causal listener: no look-ahead, whole file = any chunking, the per-clip rule, checkpoints."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from speechrnn.checkpoint import load_checkpoint
from speechrnn.errors import CheckpointError, ConfigError
from speechrnn.features import MFCC, FeatureConfig
from speechrnn.inference.listener import Listener, TorchStep, open_step
from speechrnn.model import ModelConfig, StackedLSTMClassifier

from support.inference import speechlike

LABELS = ["_silence_", "_unknown_", "yes", "no"]
CONF = Path(__file__).resolve().parents[1] / "conf" / "model" / "listener.yaml"
SMALL = {"hidden_size": 16, "conv_channels": 4, "num_layers": 2}


def _listener(**kwargs: object) -> StackedLSTMClassifier:
    torch.manual_seed(0)
    settings = {"causal": True, "bidirectional": False, **SMALL, **kwargs}
    model = StackedLSTMClassifier(LABELS, FeatureConfig(), ModelConfig(**settings))
    model(torch.randn(4, 16000) * 0.1)  # training mode: the stem's batch-norm statistics move
    return model.eval()


def _audio(seconds: float = 3.0) -> np.ndarray:
    wave = np.concatenate([speechlike(s, 1.0) for s in range(int(seconds))])  # (T,)
    return wave + 0.003 * np.random.default_rng(0).standard_normal(wave.size).astype(np.float32)


def _whole(model: StackedLSTMClassifier, wave: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return model.frame_logits(torch.from_numpy(wave)[None]).softmax(-1)[0].numpy()


def test_the_listener_variant_names_only_what_it_changes() -> None:
    settings = {k: v for k, v in yaml.safe_load(CONF.read_text()).items() if k != "defaults"}
    config = ModelConfig(**settings)
    assert config.causal and not config.bidirectional
    assert all(getattr(ModelConfig(), k) != v for k, v in settings.items())
    assert not ModelConfig().causal  # per-clip models stay as they were


@pytest.mark.parametrize("bad", [{"bidirectional": True}, {"pooling": "attention"}])
def test_a_causal_model_refuses_settings_that_read_the_future(bad: dict) -> None:
    with pytest.raises(ConfigError, match=r"model\.causal"):
        ModelConfig(causal=True, **{"bidirectional": False, **bad})


@pytest.mark.parametrize("stride", [1, 3, 6])
def test_one_step_per_stride_and_no_look_ahead(stride: int) -> None:
    model = _listener(conv_stride=stride)
    wave = _audio(2.0)
    base = _whole(model, wave)  # (steps, C)
    step = model.step_samples
    assert step == 160 * stride and base.shape == (wave.size // step, len(LABELS))
    for t in (4000, 9001, 15900):
        changed = wave.copy()
        changed[t:] = np.random.default_rng(t).standard_normal(wave.size - t) * 0.3
        moved = np.abs(_whole(model, changed) - base).max(axis=1) > 0  # (steps,)
        # step k is complete once sample (k + 1) * step has arrived: it ignores everything later
        assert not moved[: t // step].any() and moved[t // step]


def test_the_causal_front_end_uses_no_clip_statistics() -> None:
    mfcc = MFCC(FeatureConfig(), causal=True)
    wave = torch.from_numpy(_audio(1.0))[None]  # (1, T)
    lead = torch.zeros(1, mfcc.lead)
    feats = mfcc(torch.cat([lead, wave], 1))  # (1, T / hop, n_mfcc)
    assert feats.shape[1] == 100
    half = mfcc(torch.cat([lead, wave[:, :8000]], 1))  # the first half alone: the same frames
    torch.testing.assert_close(half, feats[:, :50], atol=1e-5, rtol=1e-5)
    louder = mfcc(torch.cat([lead, 10 * wave], 1)) @ mfcc.dct.T  # (1, frames, n_mels) log-mel
    bands = feats @ mfcc.dct.T
    loud = (bands > bands.min() + 0.5) & (louder < louder.max())  # above the floor, unclipped
    torch.testing.assert_close(louder[loud] - bands[loud], torch.full_like(bands[loud], 2.0))


@pytest.mark.parametrize("chunk", [160, 333, 480, 1600, 16000])
def test_any_chunking_gives_the_whole_file_posteriors(chunk: int) -> None:
    model = _listener()
    wave = _audio()
    listener = Listener(TorchStep(model), max_steps=4)
    got = np.concatenate([listener.feed(wave[i : i + chunk]) for i in range(0, wave.size, chunk)])
    np.testing.assert_allclose(got, _whole(model, wave), atol=1e-5)
    assert listener.steps == got.shape[0] and listener.step_end(0) == pytest.approx(0.03)


def test_a_batch_of_streams_keeps_each_one_apart() -> None:
    model = _listener()
    waves = torch.from_numpy(np.stack([_audio(), _audio()[::-1].copy()]))  # (2, T)
    with torch.no_grad():
        batched = model.frame_logits(waves)
        alone = torch.cat([model.frame_logits(w[None]) for w in waves])
    torch.testing.assert_close(batched, alone, atol=1e-5, rtol=1e-5)


def test_per_clip_logits_are_those_of_the_keyword_peak() -> None:
    model = _listener()
    clips = torch.from_numpy(np.stack([speechlike(s) for s in range(3)]))  # (3, T)
    with torch.no_grad():
        steps = model.frame_logits(clips)  # (3, 33, C)
        keyword = steps.softmax(-1)[..., 2:].sum(-1)  # (3, 33): yes + no
        peak = steps[torch.arange(3), keyword.argmax(1)]  # (3, C)
        torch.testing.assert_close(model(clips), peak)
        silent = model(torch.zeros(1, 16000)).softmax(-1)[0]
    assert steps.shape[1] == 33 and silent[0] > 0.99  # digital silence stays _silence_


def test_a_causal_checkpoint_rebuilds_and_streams(tmp_path: Path) -> None:
    model = _listener()
    path = model.save(tmp_path / "listener.pt")
    assert torch.load(path, weights_only=True)["model"]["causal"] is True
    step = open_step(path)
    wave = _audio()
    np.testing.assert_allclose(Listener(step).feed(wave), _whole(model, wave), atol=1e-6)
    assert load_checkpoint(path).config == model.config


def test_a_checkpoint_saved_before_the_causal_setting_loads_per_clip(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = StackedLSTMClassifier(LABELS, FeatureConfig(), ModelConfig(hidden_size=16)).eval()
    raw = {**model.metadata(), "state_dict": model.state_dict()}
    del raw["model"]["causal"]
    torch.save(raw, tmp_path / "old.pt")
    loaded = load_checkpoint(tmp_path / "old.pt")
    x = torch.randn(2, 16000)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x))
    with pytest.raises(CheckpointError, match="not a causal model"):
        open_step(tmp_path / "old.pt")
    with pytest.raises(ConfigError, match="only a causal model"):
        model.stream(x, model.initial_state(2))
