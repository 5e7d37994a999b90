"""The model zoo: CIFAR ResNets, MobileNetV2, ReXNet, VGG and tiny test models."""

from anywidth.models._registry import create_model, list_models, model_kwargs, register_model

__all__ = ["create_model", "list_models", "model_kwargs", "register_model"]
