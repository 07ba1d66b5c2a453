"""MFCC front end: shape, per-clip independence, librosa parity, warp and masks only in training."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from speechrnn.errors import ConfigError
from speechrnn.features import (
    MFCC,
    FeatureConfig,
    SpecAugment,
    warp_frequencies,
)

from support.reference import reference_mfcc


def _speechlike(seed: int, scale: float = 0.3) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(16000) / 16000
    envelope = np.exp(-(((t - 0.5) / 0.15) ** 2))
    tone = np.sin(2 * np.pi * (200 + 300 * t) * t) + 0.3 * rng.standard_normal(16000)
    return (scale * envelope * tone).astype(np.float32)


def test_default_shape_is_101_frames_of_40() -> None:
    mfcc = MFCC(FeatureConfig())
    assert mfcc(torch.zeros(3, 16000)).shape == (3, 101, 40)


def test_clip_features_do_not_depend_on_batch_mates() -> None:
    mfcc = MFCC(FeatureConfig(normalize="none", scale_db=1.0))
    quiet = torch.from_numpy(_speechlike(0, scale=1e-3))
    loud = torch.from_numpy(_speechlike(1, scale=0.9))
    alone = mfcc(quiet[None])[0]
    batched = mfcc(torch.stack([loud, quiet, loud]))[1]
    torch.testing.assert_close(batched, alone, atol=1e-4, rtol=1e-5)


def test_torchaudio_matches_librosa_with_settings_pinned() -> None:
    cfg = FeatureConfig(normalize="none", scale_db=1.0)
    wave = _speechlike(2)
    ours = MFCC(cfg)(torch.from_numpy(wave)[None])[0].numpy()  # (frames, n_mfcc)
    theirs = reference_mfcc(wave, cfg)
    assert ours.shape == theirs.shape == (101, 40)
    np.testing.assert_allclose(ours, theirs, atol=2e-3, rtol=1e-4)


def test_normalisations_per_clip_and_coefficient() -> None:
    wave = torch.from_numpy(_speechlike(3))[None]
    raw = MFCC(FeatureConfig(normalize="none", scale_db=1.0))(wave)[0]  # (frames, n_mfcc)
    mean = MFCC(FeatureConfig())(wave)[0]
    torch.testing.assert_close(mean, (raw - raw.mean(0)) / 10.0, atol=1e-4, rtol=1e-4)
    assert mean.mean(0).abs().max() < 1e-4
    meanvar = MFCC(FeatureConfig(normalize="meanvar"))(wave)[0]
    assert meanvar.mean(0).abs().max() < 1e-4 and (meanvar.std(0) - 1).abs().max() < 1e-3
    louder = MFCC(FeatureConfig())(wave * 10)[0]  # mean removal makes features level-free
    torch.testing.assert_close(louder, mean, atol=1e-3, rtol=1e-3)


def test_silence_gives_finite_features() -> None:
    assert torch.isfinite(MFCC(FeatureConfig())(torch.zeros(2, 16000))).all()


def test_frequency_warp_moves_a_tone_by_its_factor() -> None:
    spec = torch.zeros(2, 257, 3)  # (B, bins, frames)
    spec[:, 40] = 1.0
    warped = warp_frequencies(spec, torch.tensor([1.25, 0.8]))
    assert warped[0, :, 0].argmax() == 50 and warped[1, :, 0].argmax() == 32
    torch.testing.assert_close(warped[:, :, 0], warped[:, :, 2])
    same = torch.rand(3, 257, 4)
    torch.testing.assert_close(warp_frequencies(same, torch.ones(3)), same)


def test_frequency_warp_in_training_only() -> None:
    wave = torch.from_numpy(np.stack([_speechlike(4), _speechlike(5)]))  # (2, T)
    plain = MFCC(FeatureConfig())(wave)
    warping = MFCC(FeatureConfig(), warp=0.2)
    assert (warping.train()(wave) - plain).abs().amax(dim=(1, 2)).min() > 0.05
    torch.testing.assert_close(warping.eval()(wave), plain)


def test_specaugment_masks_in_training_only() -> None:
    aug = SpecAugment(freq_masks=2, freq_width=8, time_masks=2, time_width=20)
    feats = torch.ones(16, 101, 40)
    aug.eval()
    assert torch.equal(aug(feats), feats)
    aug.train()
    torch.manual_seed(0)
    masked = aug(feats)
    zero_frac = (masked == 0).float().mean().item()
    assert 0.0 < zero_frac < 0.6
    freq_masked = (masked == 0).all(dim=1).sum(1)  # coefficients masked over all frames, per clip
    time_masked = (masked == 0).all(dim=2).sum(1)  # frames masked over all coefficients, per clip
    assert freq_masked.max() <= 16 and time_masked.max() <= 40


def test_mel_domain_masks_blank_whole_log_mel_bands_in_training_only() -> None:
    wave = torch.from_numpy(np.stack([_speechlike(6), _speechlike(7)]))  # (2, T)
    mfcc, aug = MFCC(FeatureConfig()), SpecAugment(2, 8, 0, 0)
    torch.testing.assert_close(mfcc(wave, aug.eval()), mfcc(wave))
    torch.manual_seed(0)
    feats = mfcc(wave, aug.train())  # (2, frames, n_mfcc)
    bands = feats @ mfcc.dct.T  # (2, frames, n_mels): orthonormal DCT with n_mfcc == n_mels
    blank = (bands.abs() < 1e-4).all(dim=1)  # (2, n_mels): bands zero over every frame
    plain = (mfcc(wave) @ mfcc.dct.T).abs() < 1e-4
    assert blank.sum(1).min() >= 1 and blank.sum(1).max() <= 16 and not plain.all(dim=1).any()


@pytest.mark.parametrize(
    "kwargs",
    [
        {"n_mfcc": 80},
        {"win_ms": 50.0},
        {"f_max": 9000.0},
        {"hop_ms": 0.0},
        {"normalize": "cmvn"},
        {"scale_db": 0.0},
    ],
)
def test_bad_feature_settings_are_refused(kwargs: dict) -> None:
    with pytest.raises(ConfigError, match="features"):
        FeatureConfig(**kwargs)
