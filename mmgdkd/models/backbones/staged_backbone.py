# Copyright (c) mmgdkd contributors. All rights reserved.
"""A stem followed by stages: the frame shared by the light KD backbones."""
from typing import List, Sequence, Tuple, Union

import torch
from mmpretrain.models.backbones.base_backbone import BaseBackbone

from .cifar_utils import freeze_modules, normalize_out_indices, set_norm_eval


class StagedBackbone(BaseBackbone):
    """Backbone = stem modules, then stages run in order.

    Subclasses build their modules (keeping the reference module names, so
    published checkpoints load key by key), list the stem's in
    ``stem_names``, append each stage to ``stages`` as the tuple of module
    paths it runs in order (dotted paths such as ``'blocks.0'`` reach into
    containers), and call :meth:`_setup_stages`;
    :meth:`forward_stem` runs the stem. Each returned feature is a stage
    output.

    Args:
        init_cfg (dict | list[dict], optional): Initialization config.
    """

    stem_names: Tuple[str, ...] = ()

    def __init__(self, init_cfg=None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.stages: List[Tuple[str, ...]] = []

    def _setup_stages(self, out_indices: Union[int, Sequence[int]],
                      frozen_stages: int, norm_eval: bool) -> None:
        """Check and store the stage options once the stages exist."""
        num_stages = len(self.stages)
        self.out_indices = normalize_out_indices(out_indices, num_stages)
        if not -1 <= frozen_stages <= num_stages:
            raise ValueError(f'frozen_stages must be in [-1, {num_stages}], '
                             f'got {frozen_stages}.')
        self.frozen_stages = frozen_stages
        self.norm_eval = norm_eval
        self._freeze_stages()

    def forward_stem(self, x: torch.Tensor) -> torch.Tensor:
        """The stem; ``(N, C_in, H, W)`` -> first stage input."""
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        """Forward images ``(N, C_in, H, W)``.

        Returns:
            tuple[torch.Tensor]: The outputs of the stages in
            ``out_indices``, shallow to deep, ``(N, stage_channels[i], h_i,
            w_i)``.
        """
        x = self.forward_stem(x)
        outs = []
        for i, names in enumerate(self.stages):
            for name in names:
                x = self.get_submodule(name)(x)
            if i in self.out_indices:
                outs.append(x)
        return tuple(outs)

    def _freeze_stages(self) -> None:
        if self.frozen_stages >= 0:
            freeze_modules(
                self.get_submodule(name) for name in self.stem_names)
        freeze_modules(
            self.get_submodule(name)
            for names in self.stages[:max(self.frozen_stages, 0)]
            for name in names)

    def train(self, mode: bool = True) -> 'StagedBackbone':
        super().train(mode)
        self._freeze_stages()
        if mode and self.norm_eval:
            set_norm_eval(self)
        return self
