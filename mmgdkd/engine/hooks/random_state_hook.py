# Copyright (c) mmgdkd contributors. All rights reserved.
"""Make a resumed run draw the same random numbers as an uninterrupted one."""
from typing import Optional

import torch
from mmengine.hooks import Hook
from mmengine.registry import HOOKS

_KEY = 'torch_rng_state'


@HOOKS.register_module()
class RandomStateHook(Hook):
    """Carry torch's RNG state through checkpoints and around validation.

    mmengine re-seeds a resumed run and replays the data loader, which
    reproduces the data pipeline's (numpy/python) randomness, but the model's
    own draws (dropout) continue from the seed instead of where the run
    stopped. This hook stores torch's CPU (and CUDA) RNG state in each
    checkpoint and restores it when a run resumes; it also keeps validation
    from consuming the training stream (a val dataloader draws a seed), so
    validating at a checkpoint does not change what follows.
    """

    priority = 'VERY_LOW'

    def __init__(self) -> None:
        self._resumed_state: Optional[dict] = None
        self._before_val: Optional[dict] = None

    @staticmethod
    def _get_state() -> dict:
        state = {'cpu': torch.get_rng_state()}
        if torch.cuda.is_available():
            state['cuda'] = torch.cuda.get_rng_state_all()
        return state

    @staticmethod
    def _set_state(state: dict) -> None:
        torch.set_rng_state(state['cpu'])
        if 'cuda' in state and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state['cuda'])

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        checkpoint[_KEY] = self._get_state()

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        self._resumed_state = checkpoint.get(_KEY)

    def before_train(self, runner) -> None:
        # Applied here, after mmengine's resume has re-seeded everything; a
        # plain `load_from` (iteration 0) keeps the fresh seed.
        if self._resumed_state is not None and runner.iter > 0:
            self._set_state(self._resumed_state)
        self._resumed_state = None

    def before_val(self, runner) -> None:
        self._before_val = self._get_state()

    def after_val(self, runner) -> None:
        if self._before_val is not None:
            self._set_state(self._before_val)
            self._before_val = None
