"""Training mixtures for the listener: endpointing, levels, cut words, silence slots."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from speechrnn.augment import NoiseBank
from speechrnn.errors import ConfigError
from speechrnn.evaluation.longform import speech_extent
from speechrnn.training.mixtures import MixtureConfig, long_crops, mix, speech_spans

from support.inference import speechlike

NAMES = ["_silence_", "_unknown_", "yes", "no"]
FIXED = {"snr_db": (10.0, 10.0), "noise_db": (-30.0, -30.0), "speed": 0.0}


def _clips() -> tuple[torch.Tensor, torch.Tensor]:
    words = np.stack([speechlike(s, scale=0.05 * (s + 1)) for s in range(4)])  # (4, T)
    clips = torch.from_numpy(np.concatenate([words, np.zeros((1, 16000), np.float32), words[:3]]))
    return clips, torch.tensor([2, 3, 1, 2, 0, 3, 2, 1])  # (8, T), slot 4 is _silence_


def _db(x: torch.Tensor) -> float:
    return 10.0 * float(torch.log10(x.square().mean()))


def test_batched_endpointing_is_the_recordings_rule() -> None:
    clips, _ = _clips()
    spans = speech_spans(clips[:4]).numpy() / 16000  # (4, 2) seconds
    expected = np.array([speech_extent(c) for c in clips[:4].numpy()])
    np.testing.assert_allclose(spans, expected, atol=1e-9)


def test_words_sit_at_their_snr_over_one_continuous_background() -> None:
    clips, targets = _clips()
    bank = NoiseBank.generated(seconds=3.0)
    config = MixtureConfig(clips=4, cut_share=0.0, **FIXED)
    out = mix(clips, targets, NAMES, bank, config, torch.Generator().manual_seed(0))
    assert out.wave.shape == (2, 64000) and out.labels.tolist() == [[2, 3, 1, 2], [0, 3, 2, 1]]
    clean = mix(clips, targets, NAMES, bank, config, torch.Generator().manual_seed(0))
    torch.testing.assert_close(clean.wave, out.wave)  # one generator seed, one mixture
    spans = out.spans
    assert (spans[1, 0] == 0).all()  # the _silence_ slot holds no word
    for b, k in [(0, 0), (0, 1), (1, 1)]:
        lo, hi = spans[b, k].tolist()
        assert k * 16000 <= lo < hi <= (k + 1) * 16000
        inside = clips[2 * b + k, lo - k * 16000 : hi - k * 16000]
        assert speech_extent(clips[2 * b + k].numpy())[0] == pytest.approx((lo - k * 16000) / 16000)
        assert _db(out.wave[b, lo:hi]) == pytest.approx(10 * np.log10(10**-3 + 10**-2), abs=0.6)
        assert inside.abs().max() > 0
    quiet = out.wave[1, 16000 * 0 : 16000]  # the _silence_ slot: background alone (clip zeros)
    assert _db(quiet) == pytest.approx(-30.0, abs=1.5)


def test_cut_commands_become_unknown_words() -> None:
    clips, targets = _clips()
    bank = NoiseBank.generated(seconds=3.0)
    config = MixtureConfig(clips=4, cut_share=1.0, **{**FIXED, "noise_db": (-90.0, -90.0)})
    out = mix(clips, targets, NAMES, bank, config, torch.Generator().manual_seed(1))
    full = speech_spans(clips)  # (8, 2)
    for slot, target in enumerate(targets.tolist()):
        b, k = divmod(slot, 4)
        if target < 2:
            assert out.labels[b, k] == target
            continue
        lo, hi = (out.spans[b, k] - k * 16000).tolist()
        assert out.labels[b, k] == 1 and lo == full[slot, 0]
        kept = (hi - lo) / float(full[slot, 1] - full[slot, 0])
        assert 0.29 <= kept <= 0.71
        assert out.wave[b, k * 16000 + hi : (k + 1) * 16000].abs().max() < 1e-3  # cut off


def test_long_crops_loop_short_recordings_at_unit_rms() -> None:
    bank = NoiseBank.generated(seconds=2.0)
    crops = long_crops(bank, 3, 80000, torch.Generator().manual_seed(0))  # 5 s from 2 s files
    assert crops.shape == (3, 80000)
    torch.testing.assert_close(crops.square().mean(1), torch.ones(3), atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(crops[:, :16000], crops[:, 32000:48000])  # looped every 2 s


@pytest.mark.parametrize(
    "kwargs",
    [{"clips": 0}, {"snr_db": (5.0, 0.0)}, {"cut_share": 1.5}, {"speed": 0.5}],
)
def test_bad_mixture_settings_are_refused(kwargs: dict) -> None:
    with pytest.raises(ConfigError, match="mixture"):
        MixtureConfig(**kwargs)


def test_clips_must_fill_whole_sequences() -> None:
    clips, targets = _clips()
    with pytest.raises(ValueError, match="sequences of 3"):
        mix(
            clips,
            targets,
            NAMES,
            NoiseBank.generated(2.0),
            MixtureConfig(clips=3),
            torch.Generator(),
        )


@pytest.mark.parametrize("quiet", [0.0, 1.0])
def test_silence_slots_hold_a_noise_cut_or_the_background_alone(quiet: float) -> None:
    clips, targets = _clips()
    clips[4] = 0.5 * torch.from_numpy(np.random.default_rng(0).uniform(-1, 1, 16000))  # loud
    config = MixtureConfig(clips=4, cut_share=0.0, quiet_share=quiet, **FIXED)
    out = mix(clips, targets, NAMES, NoiseBank.generated(3.0), config, torch.Generator())
    level = _db(out.wave[1, :16000])  # the _silence_ slot
    assert level == pytest.approx(-30.0, abs=1.5) if quiet else level > -12.0
