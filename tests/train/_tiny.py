"""A small registered model for the training tests (the zoo's models are tested elsewhere)."""

from torch import nn

from anywidth.models import register_model


@register_model
def _test_tinynet(num_classes: int = 10, in_channels: int = 1, width: int = 8) -> nn.Module:
    """Two conv-BN-ReLU layers, dropout and a linear head; works on any input of side >= 4."""
    return nn.Sequential(
        nn.Conv2d(in_channels, width, 3, padding=1, bias=False),
        nn.BatchNorm2d(width),
        nn.ReLU(),
        nn.Conv2d(width, 2 * width, 3, stride=2, padding=1, bias=False),
        nn.BatchNorm2d(2 * width),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(4),
        nn.Flatten(),
        nn.Dropout(0.2),
        nn.Linear(2 * width * 16, num_classes),
    )


MODEL_NAME = "_test_tinynet"
