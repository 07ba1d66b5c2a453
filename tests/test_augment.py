"""Device-side augmentation: time shift, noise mixing, gain, silence synthesis; seeded."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from speechrnn.augment import (
    AugmentConfig,
    NoiseBank,
    augment,
    change_speed,
    mix_noise,
    mixup,
    random_gain,
    time_shift,
)
from speechrnn.errors import ConfigError
from speechrnn.settings import from_mapping


def _gen(seed: int = 0, device: str = "cpu") -> torch.Generator:
    return torch.Generator(device=device).manual_seed(seed)


def _quiet_bank() -> NoiseBank:
    rng = np.random.default_rng(0)
    waves = [0.01 * rng.standard_normal(40000), 0.05 * rng.standard_normal(9000)]
    return NoiseBank.from_waves([w.astype(np.float32) for w in waves], ["a.wav", "b.wav"])


def _impulses(batch: int = 4, at: int = 8000) -> torch.Tensor:
    wave = torch.zeros(batch, 16000)
    wave[:, at] = 0.5
    return wave


def test_time_shift_moves_energy_by_the_shift() -> None:
    shifts = torch.tensor([0, 1600, -1600, 37])
    moved = time_shift(_impulses(), shifts, max_shift=1600)
    assert moved.argmax(dim=1).tolist() == [8000, 9600, 6400, 8037]
    assert torch.allclose(moved.sum(dim=1), torch.full((4,), 0.5))
    edge = torch.ones(1, 16000)
    assert time_shift(edge, torch.tensor([100]), 100)[0, :100].abs().sum() == 0
    assert time_shift(edge, torch.tensor([-100]), 100)[0, -100:].abs().sum() == 0


def test_augment_shift_stays_within_the_configured_range() -> None:
    config = AugmentConfig(time_shift_ms=100.0, noise_prob=0.0, gain_db=0.0, speed=0.0)
    out = augment(_impulses(256), config, None, _gen())
    moved = out.argmax(dim=1) - 8000  # (B,)
    assert moved.abs().max() <= 1600 and moved.abs().max() > 1000
    assert len(set(moved.tolist())) > 100
    expected = torch.randint(-1600, 1601, (256,), generator=_gen())
    assert torch.equal(moved, expected)


def test_mixup_blends_each_row_with_one_partner() -> None:
    wave = torch.arange(8, dtype=torch.float32)[:, None].expand(8, 100)  # row i is all i
    torch.manual_seed(3)
    mixed, partner, lam = mixup(wave, 0.4)
    assert 0.0 <= lam <= 1.0 and sorted(partner.tolist()) == list(range(8))
    torch.testing.assert_close(mixed, lam * wave + (1 - lam) * wave[partner])
    torch.manual_seed(3)
    again, partner_again, lam_again = mixup(wave, 0.4)
    assert lam_again == lam and torch.equal(partner_again, partner) and torch.equal(again, mixed)
    lams = [mixup(wave, 0.2)[2] for _ in range(200)]  # Beta(0.2, 0.2): mostly near 0 or 1
    assert np.mean([min(x, 1 - x) < 0.1 for x in lams]) > 0.5


def test_noise_at_volume_zero_is_identity() -> None:
    wave = torch.rand(8, 16000) - 0.5
    assert torch.equal(mix_noise(wave, _quiet_bank(), 1.0, 0.0, _gen()), wave)
    assert torch.equal(mix_noise(wave, _quiet_bank(), 0.0, 0.5, _gen()), wave)
    off = AugmentConfig(time_shift_ms=0.0, noise_prob=1.0, noise_volume=0.0, speed=0.0)
    assert torch.equal(augment(wave, off, _quiet_bank(), _gen()), wave)


def test_noise_volume_is_relative_to_full_scale() -> None:
    silent = torch.zeros(512, 16000)
    mixed = mix_noise(silent, _quiet_bank(), 1.0, 0.5, _gen())
    peaks = mixed.abs().amax(dim=1)  # (B,)
    assert peaks.max() <= 0.5 + 1e-6 and peaks.max() > 0.45 and peaks.min() < 0.05
    some = mix_noise(silent, _quiet_bank(), 0.3, 0.5, _gen())
    assert 0.2 < (some.abs().amax(dim=1) > 0).float().mean() < 0.4


def test_crops_are_peak_normalised_and_stay_inside_one_recording() -> None:
    bank = _quiet_bank()
    crops, to_unit, files, offsets = bank.crops(300, _gen())
    assert torch.allclose((crops * to_unit).abs().amax(dim=1), torch.ones(300))
    assert set(files.tolist()) == {0, 1}
    assert (offsets[files == 0] <= 40000 - 16000).all()
    assert (offsets[files == 1] <= 2 * 9000 - 16000).all()  # the short one is looped


def test_silence_levels_cover_near_zero_to_full_scale() -> None:
    waves, _, _ = _quiet_bank().silence(4000, _gen())
    peaks = waves.abs().amax(dim=1)
    assert peaks.min() < 0.012 and peaks.max() > 0.95 and peaks.max() <= 1.0 + 1e-6
    assert 0.05 < peaks.median() < 0.3


def test_gain_range() -> None:
    wave = torch.full((2000, 16000), 0.01)
    scaled = random_gain(wave, 6.0, _gen())[:, 0] / 0.01
    assert scaled.min() >= 10 ** (-6 / 20) - 1e-5 and scaled.max() <= 10 ** (6 / 20) + 1e-5
    assert scaled.min() < 0.55 and scaled.max() > 1.9


def test_speed_change_scales_frequency_and_keeps_the_centre() -> None:
    t = torch.arange(16000) / 16000
    tone = torch.sin(2 * torch.pi * 500 * t).repeat(3, 1)  # (3, T)
    rates = torch.tensor([1.0, 0.9, 1.1])
    out = change_speed(tone, rates)
    torch.testing.assert_close(out[0], tone[0], atol=1e-3, rtol=0)  # float32 positions
    core = out[:, 2000:14000]  # away from the zero-filled ends
    peaks = torch.fft.rfft(core * torch.hann_window(core.shape[1])).abs().argmax(dim=1)
    hz = peaks.float() * 16000 / core.shape[1]
    torch.testing.assert_close(hz, 500 * rates, atol=3.0, rtol=0)
    impulse = torch.zeros(2, 16001)
    impulse[:, 8000] = 1.0  # the centre sample stays where it is at any rate
    assert change_speed(impulse, torch.tensor([0.95, 1.05]))[:, 8000].tolist() == [1.0, 1.0]
    slow = change_speed(torch.ones(1, 16000), torch.tensor([1.2]))
    assert slow[0, 0] == 0 and slow[0, 8000] == 1  # reading past the ends gives silence


def test_speed_zero_is_identity_and_range_is_checked() -> None:
    wave = torch.rand(4, 16000) * 2 - 1
    plain = AugmentConfig(time_shift_ms=0.0, noise_prob=0.0, speed=0.0)
    assert torch.equal(augment(wave, plain, None, _gen()), wave)
    sped = augment(wave, AugmentConfig(time_shift_ms=0.0, noise_prob=0.0, speed=0.1), None, _gen())
    assert not torch.equal(sped, wave)
    with pytest.raises(ConfigError, match=r"augment\.speed must be in"):
        AugmentConfig(speed=0.5)


def test_same_seed_same_batch() -> None:
    config = AugmentConfig(gain_db=3.0, speed=0.05)
    wave = torch.rand(16, 16000) * 2 - 1
    first = augment(wave, config, _quiet_bank(), _gen(7))
    assert torch.equal(first, augment(wave, config, _quiet_bank(), _gen(7)))
    assert not torch.equal(first, augment(wave, config, _quiet_bank(), _gen(8)))
    assert first.abs().max() <= 1.0


def test_generated_bank_for_corpora_without_noise() -> None:
    bank = NoiseBank.generated()
    assert bank.names == ("generated_white", "generated_pink")
    assert bank.crops(4, _gen())[0].shape == (4, 16000)


def test_config_from_train_yaml_and_range_errors() -> None:
    from support.cli import compose_config

    section = compose_config("train", []).augment
    assert from_mapping(AugmentConfig, section, "augment") == AugmentConfig()
    assert AugmentConfig(time_shift_ms=100.0).shift_samples == 1600
    with pytest.raises(ConfigError, match=r"augment\.noise_prob must be in"):
        from_mapping(AugmentConfig, {"noise_prob": 1.5}, "augment")
    with pytest.raises(ConfigError, match=r"augment\.time_shift_ms"):
        AugmentConfig(time_shift_ms=-1.0)


@pytest.mark.gpu
def test_cuda_matches_the_op_semantics() -> None:
    bank = _quiet_bank().to("cuda")
    out = augment(_impulses(64).cuda(), AugmentConfig(gain_db=2.0), bank, _gen(0, "cuda"))
    assert out.device.type == "cuda" and out.shape == (64, 16000)
    again = augment(_impulses(64).cuda(), AugmentConfig(gain_db=2.0), bank, _gen(0, "cuda"))
    assert torch.equal(out, again)
    shifted = time_shift(_impulses().cuda(), torch.tensor([0, 5, -5, 9], device="cuda"), 10)
    assert shifted.argmax(dim=1).tolist() == [8000, 8005, 7995, 8009]
