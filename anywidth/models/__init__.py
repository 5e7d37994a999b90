"""The model zoo: CIFAR ResNets, MobileNetV2, ReXNet, VGG, super-resolution (SRCNN, EDSR) and
tiny test models."""

# Importing the family modules registers their factories.
from anywidth.models import mobilenetv2, resnet_cifar, rexnet, superres, tiny, vgg  # noqa: F401
from anywidth.models._registry import create_model, list_models, model_kwargs, register_model

__all__ = ["create_model", "list_models", "model_kwargs", "register_model"]
