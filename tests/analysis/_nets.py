"""A small conv net whose first layer has a chosen weight rank."""

import torch
from torch import nn


class LowRankFirst(nn.Module):
    """conv1 (1x1, 8 -> 16, no bias) of weight rank ``rank``, then a full 3x3 conv and a head."""

    def __init__(self, rank: int = 4) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(8, 16, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.act1 = nn.ReLU()
        self.conv2 = nn.Conv2d(16, 16, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(16)
        self.act2 = nn.ReLU()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(16, 10)
        gen = torch.Generator().manual_seed(0)
        with torch.no_grad():
            a, b = torch.randn(16, rank, generator=gen), torch.randn(rank, 8, generator=gen)
            self.conv1.weight.copy_((a @ b).view(16, 8, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act1(self.bn1(self.conv1(x)))  # (B, 16, H, W)
        x = self.act2(self.bn2(self.conv2(x)))
        return self.fc(self.pool(x).flatten(1))


def batches(n: int = 3, size: int = 8) -> list[tuple[torch.Tensor, torch.Tensor]]:
    gen = torch.Generator().manual_seed(1)
    return [
        (torch.randn(16, 8, size, size, generator=gen), torch.randint(0, 10, (16,), generator=gen))
        for _ in range(n)
    ]
