"""Small user models for the CLI's ``--model-spec package.module:factory``."""

import torch
from torch import nn


class ChannelCumsum(nn.Module):
    """conv → cumulative sum over channels (no channel rule) → conv → pooled linear head."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.conv2 = nn.Conv2d(8, 16, 3, padding=1)
        self.fc = nn.Linear(16, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.cumsum(torch.relu(self.conv1(x)), dim=1)
        x = torch.relu(self.conv2(x))
        return self.fc(x.mean((2, 3)))


def channel_cumsum() -> nn.Module:
    return ChannelCumsum()
