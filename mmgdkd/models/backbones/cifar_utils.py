# Copyright (c) mmgdkd contributors. All rights reserved.
"""Helpers shared by the CIFAR knowledge-distillation backbones."""
from typing import Dict, Iterable, Sequence, Tuple, TypeVar, Union

import torch.nn as nn
from torch.nn.modules.batchnorm import _BatchNorm

_Setting = TypeVar('_Setting')


def lookup_arch(name: str, choices: Dict[str, _Setting],
                what: str) -> _Setting:
    """Return the setting registered under ``name``.

    Args:
        name (str): Name to look up, e.g. ``'resnet8x4'``.
        choices (dict): Valid names and their settings.
        what (str): What is looked up, for the error message, e.g.
            ``'CIFARResNet arch'``.

    Raises:
        ValueError: If ``name`` is not a key of ``choices``; the message
            names it and lists the valid choices.
    """
    if not isinstance(name, str) or name not in choices:
        valid = ', '.join(repr(key) for key in choices)
        raise ValueError(f'Unknown {what} {name!r}; valid choices: {valid}.')
    return choices[name]


def normalize_out_indices(out_indices: Union[int, Sequence[int]],
                          num_stages: int) -> Tuple[int, ...]:
    """Map (possibly negative) stage indices to ``0..num_stages - 1``.

    Args:
        out_indices (int | Sequence[int]): Stages whose outputs to return.
        num_stages (int): Number of stages of the backbone.

    Returns:
        tuple[int]: Sorted, de-duplicated non-negative indices, so the
        returned feature tuple is always ordered shallow to deep.

    Raises:
        ValueError: If an index is out of range or none is given.
    """
    if isinstance(out_indices, int):
        out_indices = (out_indices, )
    indices = []
    for index in out_indices:
        if not -num_stages <= index < num_stages:
            raise ValueError(f'out_indices entry {index} is out of range for '
                             f'a backbone with {num_stages} stages.')
        indices.append(index % num_stages)
    if not indices:
        raise ValueError('out_indices must select at least one stage.')
    return tuple(sorted(set(indices)))


def freeze_modules(modules: Iterable[nn.Module]) -> None:
    """Put ``modules`` in eval mode and stop their parameters' gradients."""
    for module in modules:
        module.eval()
        for param in module.parameters():
            param.requires_grad = False


def set_norm_eval(module: nn.Module) -> None:
    """Put every BatchNorm-like layer of ``module`` in eval mode."""
    for m in module.modules():
        if isinstance(m, _BatchNorm):
            m.eval()


def default_init_cfg() -> list:
    """He-normal (fan-out) convolutions and unit-scale norms.

    This is the initialisation of the reference CIFAR models: their
    ``normal_(0, sqrt(2 / (k * k * out_channels)))`` is Kaiming-normal in
    ``fan_out`` mode, conv biases and norm shifts start at zero.
    """
    return [
        dict(
            type='Kaiming',
            layer='Conv2d',
            mode='fan_out',
            nonlinearity='relu',
            distribution='normal',
            bias=0),
        dict(
            type='Constant', val=1, bias=0, layer=['_BatchNorm', 'GroupNorm']),
    ]
