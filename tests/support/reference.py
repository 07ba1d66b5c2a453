"""librosa's MFCC with the settings pinned to the model's front end: the parity reference."""

from __future__ import annotations

import numpy as np

from speechrnn.features import FeatureConfig


def reference_mfcc(wave: np.ndarray, config: FeatureConfig) -> np.ndarray:
    """librosa's MFCC of one clip with its settings pinned to MFCC's: (frames, n_mfcc), raw dB."""
    import librosa

    mel = librosa.feature.melspectrogram(
        y=wave.astype(np.float64),
        sr=config.sample_rate,
        n_fft=config.n_fft,
        hop_length=config.hop_length,
        win_length=config.win_length,
        window="hann",
        center=True,
        pad_mode="reflect",
        power=2.0,
        n_mels=config.n_mels,
        fmin=config.f_min,
        fmax=config.f_max,
        htk=True,
        norm=None,
    )
    db = librosa.power_to_db(mel, ref=1.0, amin=1e-10, top_db=config.top_db)
    return librosa.feature.mfcc(S=db, n_mfcc=config.n_mfcc, dct_type=2, norm="ortho", lifter=0).T
