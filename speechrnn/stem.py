"""ConvStem: 3x3 convolutions over time and mel bands ahead of the LSTM (CRNN style)."""

from __future__ import annotations

import torch
from torch import nn


class ConvStem(nn.Module):
    """(B, F, bands) log-mel frames -> (B, ceil(F / stride), channels * ceil(bands / 4)).

    Two 3x3 convolutions, each with batch norm and ReLU, each halving the mel bands; the second
    also steps `stride` frames in time. Every output step sees 5 neighbouring frames and bands.
    """

    def __init__(self, bands: int, channels: int, stride: int) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            nn.Conv2d(1, channels, 3, stride=(1, 2), padding=1, bias=False),
            nn.BatchNorm2d(channels),
            nn.ReLU(),
            nn.Conv2d(channels, channels, 3, stride=(stride, 2), padding=1, bias=False),
            nn.BatchNorm2d(channels),
            nn.ReLU(),
        )
        self.output_size = channels * ((bands + 3) // 4)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        maps = self.layers(frames[:, None])  # (B, channels, F', bands')
        return maps.transpose(1, 2).flatten(2)  # (B, F', channels * bands')
