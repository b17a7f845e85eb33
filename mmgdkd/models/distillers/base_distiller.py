# Copyright (c) mmgdkd contributors. All rights reserved.
"""Host-independent half of a logit distiller.

A distiller holds a trainable student and a frozen teacher of the same host
library (MMSeg segmentor or MMPretrain classifier). One training step runs
each network once, reuses the student's head logits for its own task losses
and for distillation, and returns one loss dict. Everything that is not
training (``predict``/``tensor`` modes, checkpoints) is the student alone.
"""
import contextlib
import warnings
from abc import abstractmethod
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
from mmengine.logging import MessageHub, print_log
from mmengine.model import BaseModel, revert_sync_batchnorm
from mmengine.registry import DefaultScope, Registry
from torch import Tensor

from .checks import (check_distill_loss_name, check_losses_fit_classes,
                     check_same_preprocessor, check_teacher_preprocessor,
                     check_teacher_weights)
from .state_dict_hooks import (route_loaded_keys_hook,
                               student_state_dict_hook)
from .teacher_ensemble import TeacherEnsemble, expand_teachers, teacher_label
from .utils import ModelSpec, load_model_cfg, load_teacher_checkpoint

# teacher_autocast choices: None = the ambient autocast ('inherit'),
# False = fp32 (autocast off), else the autocast dtype.
_AUTOCAST_DTYPES = {
    'inherit': None,
    'float32': False,
    'float16': torch.float16,
    'bfloat16': torch.bfloat16
}


class BaseDistiller(BaseModel):
    """Frozen teacher(s) + trainable student, distilled on head logits.

    Args:
        student: The student model: a config dict, a config path
            (``'mmseg::...'``) or ``dict(cfg_path=..., **overrides)``.
        teacher: The teacher model, in the same forms, or a list of them: an
            ensemble of teachers (any architectures and output strides, the
            student's class count), run one after another.
        teacher_ckpt: Path or URL of the trained teacher's checkpoint, loaded
            strictly on CPU at build time; a list of the same length for an
            ensemble. ``None`` (for a teacher, or for all) needs a teacher
            config with a whole-model ``Pretrained`` init_cfg, or
            ``allow_untrained_teacher=True``.
        teacher_weights: Ensemble weights, one positive number per teacher,
            normalised to sum to 1; ``None`` weighs the teachers equally.
        teacher_ensemble: How an ensemble teaches. ``'prob'``: each loss
            sees one teacher whose class distribution at the loss's
            temperature is the weighted mean of the teachers'
            (docs/losses.md, "Teacher ensembles"; needs losses with a class
            softmax, so not CWD). ``'loss'``:
            the weighted sum of the per-teacher losses, each teacher's term
            also logged as ``distill.<tap>.teacher<i>.<name>``.
        distill_losses: ``{name: loss_cfg}``. Each name must start with
            ``'loss_'`` (mmengine sums keys containing ``loss``). A loss cfg
            may carry ``heads={tap: weight}`` to override ``head_weights``.
        head_weights: ``{tap: weight}``: which head logits each distillation
            loss is applied to, and with what extra weight. ``None`` uses the
            host default (see subclasses).
        warmup_iters: Linear warm-up of the distillation terms over this many
            iterations (``min((iter + 1) / warmup_iters, 1)``); 0 disables.
        warmup_epochs: The same by epoch, epochs counted from 1 as in the
            reference; exclusive with ``warmup_iters``.
        teacher_autocast: Precision of the teacher's forward.
            ``'inherit'`` (default): the ambient autocast, so under
            ``--amp`` the teacher runs in the same mixed precision as the
            student (on a GPU several times faster than fp32; its logits
            are then fp16/bf16, ties in its top-k become likelier, and the
            losses still compute in fp32). ``'float32'``: autocast off, full
            precision whatever the student uses (the previous behaviour,
            also ``None``). ``'float16'``/``'bfloat16'``: that autocast
            dtype, even without ``--amp``.
        checkpoint_teacher: Also store the teacher in checkpoints (prefix
            ``teacher.``). By default checkpoints hold the student only, with
            plain host keys, so they load into the host's own tools.
        allow_untrained_teacher: Distil from a randomly initialised teacher
            (tests, timing); without it such a config is refused at build.
        data_preprocessor: Defaults to the student's.
        init_cfg: Unused by the distiller itself (the student keeps its own).
    """

    #: The host's ``MODELS`` registry; set by subclasses.
    host_models: Registry = None
    #: Name of the classifier weight, for class-count messages.
    classifier_key: Optional[str] = None
    #: Whether a model-level ``pretrained`` initialises the whole host model.
    pretrained_is_whole_model: bool = False

    def __init__(self,
                 student: ModelSpec,
                 teacher: Union[ModelSpec, List[ModelSpec]],
                 teacher_ckpt: Union[str, None, List[Optional[str]]] = None,
                 teacher_weights: Optional[Sequence[float]] = None,
                 teacher_ensemble: str = 'prob',
                 distill_losses: Optional[dict] = None,
                 head_weights: Optional[Dict[str, float]] = None,
                 warmup_iters: int = 0,
                 warmup_epochs: int = 0,
                 teacher_autocast: Optional[str] = 'inherit',
                 checkpoint_teacher: bool = False,
                 allow_untrained_teacher: bool = False,
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None) -> None:
        teacher_specs, teacher_ckpts, weights = expand_teachers(
            teacher, teacher_ckpt, teacher_weights)
        ensemble = TeacherEnsemble(weights, teacher_ensemble)
        student_cfg = load_model_cfg(student)
        teacher_cfgs = [load_model_cfg(spec) for spec in teacher_specs]
        if data_preprocessor is None:
            data_preprocessor = student_cfg.get('data_preprocessor')
        else:
            check_same_preprocessor(data_preprocessor,
                                    student_cfg.get('data_preprocessor'))
        num_teachers = len(teacher_cfgs)
        teacher_init_weights = []
        for index, (teacher_cfg, ckpt) in enumerate(
                zip(teacher_cfgs, teacher_ckpts)):
            check_teacher_preprocessor(
                student_cfg.get('data_preprocessor'),
                teacher_cfg.get('data_preprocessor'),
                teacher_label(index, num_teachers))
            try:
                teacher_init_weights.append(check_teacher_weights(
                    teacher_cfg, ckpt, allow_untrained_teacher,
                    self.pretrained_is_whole_model))
            except ValueError as err:
                if num_teachers == 1:
                    raise
                raise ValueError(
                    f'{teacher_label(index, num_teachers)} (model.teacher'
                    f'[{index}]): {err}') from err
        # Host models build their parts from "the" registry of the current
        # scope; make that the host's, whatever scope the caller is in.
        with DefaultScope.overwrite_default_scope(self.host_models.scope):
            if isinstance(data_preprocessor, dict):
                data_preprocessor = self.host_models.build(data_preprocessor)
            super().__init__(
                data_preprocessor=data_preprocessor, init_cfg=init_cfg)
            self.student = self.host_models.build(student_cfg)
            teachers = tuple(
                self._build_teacher(cfg, ckpt, init,
                                    teacher_label(i, num_teachers))
                for i, (cfg, ckpt, init) in enumerate(
                    zip(teacher_cfgs, teacher_ckpts, teacher_init_weights)))
        # Kept out of ``_modules`` on purpose: the teachers are not part of
        # the trainable model (optimizer, DDP, init_weights, checkpoints).
        # ``_apply`` and ``train`` carry device moves and mode over to them.
        object.__setattr__(self, '_teachers', teachers)
        self.teacher_ckpt = teacher_ckpt
        self.teacher_weights = ensemble.weights
        self.teacher_ensemble = ensemble.mode
        self._ensemble = ensemble
        self.checkpoint_teacher = checkpoint_teacher

        if teacher_autocast is None:  # the former default: full precision
            teacher_autocast = 'float32'
        if teacher_autocast not in _AUTOCAST_DTYPES:
            raise ValueError(
                f'teacher_autocast must be one of {list(_AUTOCAST_DTYPES)} '
                f'or None, got {teacher_autocast!r}')
        self.teacher_autocast = teacher_autocast

        if warmup_iters < 0 or warmup_epochs < 0:
            raise ValueError(f'warm-up lengths must be >= 0, got '
                             f'warmup_iters={warmup_iters}, '
                             f'warmup_epochs={warmup_epochs}')
        if warmup_iters and warmup_epochs:
            raise ValueError('give warmup_iters or warmup_epochs, not both '
                             f'(got {warmup_iters} and {warmup_epochs})')
        self.warmup_iters = warmup_iters
        self.warmup_epochs = warmup_epochs

        with DefaultScope.overwrite_default_scope(self.host_models.scope):
            self._build_distill_losses(distill_losses or {}, head_weights)
        check_losses_fit_classes(self.distill_losses,
                                 self.num_classes(self.student))
        ensemble.check_losses(self.distill_losses)
        self.register_state_dict_post_hook(student_state_dict_hook)
        self.register_load_state_dict_pre_hook(route_loaded_keys_hook)

    # ------------------------------------------------------------------
    # host glue, implemented by subclasses
    # ------------------------------------------------------------------
    @staticmethod
    @abstractmethod
    def num_classes(model: nn.Module) -> int:
        """Number of classes the model predicts."""

    @abstractmethod
    def available_taps(self, model: nn.Module) -> List[str]:
        """Names of the heads whose logits can be distilled."""

    @abstractmethod
    def default_head_weights(self) -> Dict[str, float]:
        """``head_weights`` used when the config gives none."""

    @abstractmethod
    def student_forward_train(
            self, inputs: Tensor,
            data_samples: list) -> Tuple[Dict[str, Tensor], dict]:
        """Student logits per tap and the student's own task losses."""

    @abstractmethod
    def teacher_forward(self, inputs: Tensor, taps: List[str],
                        teacher: Optional[nn.Module] = None
                        ) -> Dict[str, Tensor]:
        """Logits of ``teacher`` (default: the single teacher) for ``taps``
        (called under ``no_grad``)."""

    def match_teacher(self, teacher_logits: Dict[str, Tensor],
                      student_logits: Dict[str, Tensor]
                      ) -> Dict[str, Tensor]:
        """Teacher logits brought to the student's (e.g. the spatial size);
        called after both forwards of a step, under the teacher's ``no_grad``
        and autocast. As is by default."""
        return teacher_logits

    @abstractmethod
    def distill_target(self, data_samples: list) -> Optional[Tensor]:
        """Labels passed to the distillation losses (may be ``None``)."""

    # ------------------------------------------------------------------
    @property
    def teachers(self) -> Tuple[nn.Module, ...]:
        """The frozen teachers (not submodules; see ``__init__``)."""
        return self._teachers

    @property
    def teacher(self) -> nn.Module:
        """The frozen teacher of a single-teacher distiller."""
        if len(self._teachers) != 1:
            raise RuntimeError(
                f'this distiller has an ensemble of {len(self._teachers)} '
                'teachers: use .teachers')
        return self._teachers[0]

    def _build_teacher(self, cfg: dict, ckpt: Optional[str],
                       init_weights: bool, label: str) -> nn.Module:
        """Build, load, freeze one teacher (under the host's scope).

        ``init_weights``: run the teacher's own whole-model ``Pretrained``
        init (see :func:`~.checks.check_teacher_weights`).
        """
        # The teacher's (discarded) random init must not shift the random
        # stream: with the same seed, the student then starts exactly like
        # the same model trained without distillation.
        with torch.random.fork_rng(devices=[]):
            model = self.host_models.build(cfg)
            if init_weights:
                model.init_weights()
        self._check_num_classes(self.num_classes(self.student),
                                self.num_classes(model), label)
        if not ckpt and not init_weights:
            warnings.warn(f'allow_untrained_teacher=True: the {label} is '
                          'randomly initialised')
        elif ckpt:
            load_teacher_checkpoint(model, ckpt, self.classifier_key)
            print_log(f'Loaded {label} weights from {ckpt}', logger='current')
        # A frozen teacher in eval mode never synchronises statistics, so
        # SyncBN is BN; reverting lets it run anywhere (CPU, one process).
        model = revert_sync_batchnorm(model)
        model.requires_grad_(False)
        model.eval()
        return model

    def _check_num_classes(self, student_classes: int, teacher_classes: int,
                           label: str = 'teacher') -> None:
        if student_classes != teacher_classes:
            raise ValueError(
                f'class-count mismatch between {label} and student: the '
                f'{label} predicts {teacher_classes} classes, the student '
                f'{student_classes}')

    def _build_distill_losses(self, distill_losses: dict,
                              head_weights: Optional[Dict[str, float]]
                              ) -> None:
        default_weights = dict(
            self.default_head_weights() if head_weights is None else
            head_weights)
        student_taps = set(self.available_taps(self.student))
        teacher_taps = set.intersection(
            *[set(self.available_taps(t)) for t in self.teachers])
        self.distill_losses = nn.ModuleDict()
        self.loss_heads: Dict[str, Dict[str, float]] = {}
        for name, loss_cfg in distill_losses.items():
            check_distill_loss_name(name)
            loss_cfg = dict(loss_cfg)
            heads = dict(loss_cfg.pop('heads', default_weights))
            for tap, weight in heads.items():
                if tap not in student_taps or tap not in teacher_taps:
                    raise ValueError(
                        f'{name}: head {tap!r} is not available on both '
                        f'models (student: {sorted(student_taps)}, teacher: '
                        f'{self._teacher_taps_text()})')
                if weight < 0:
                    raise ValueError(
                        f'{name}: head weight for {tap!r} must be >= 0, got '
                        f'{weight}')
            self.distill_losses[name] = self.host_models.build(loss_cfg)
            self.loss_heads[name] = heads

    def _teacher_taps_text(self) -> str:
        taps = [sorted(self.available_taps(t)) for t in self.teachers]
        if len(taps) == 1:
            return str(taps[0])
        return ', '.join(f'{teacher_label(i, len(taps))}: {t}'
                         for i, t in enumerate(taps))

    def warmup_factor(self) -> float:
        """Current multiplier of the distillation terms, in ``(0, 1]``."""
        hub = MessageHub.get_current_instance()
        if self.warmup_iters:
            return min((hub.get_info('iter', 0) + 1) / self.warmup_iters, 1.)
        if self.warmup_epochs:
            return min((hub.get_info('epoch', 0) + 1) / self.warmup_epochs,
                       1.)
        return 1.

    # ------------------------------------------------------------------
    # modes
    # ------------------------------------------------------------------
    def forward(self,
                inputs: Tensor,
                data_samples: Optional[list] = None,
                mode: str = 'tensor'):
        if mode == 'loss':
            return self.loss(inputs, data_samples)
        if mode == 'predict':
            return self.predict(inputs, data_samples)
        if mode == 'tensor':
            return self._forward(inputs, data_samples)
        raise RuntimeError(f'Invalid mode "{mode}". Only supports loss, '
                           'predict and tensor mode')

    def loss(self, inputs: Tensor, data_samples: list) -> Dict[str, Tensor]:
        """One distillation step.

        Returns:
            dict: ``student.*`` task losses, ``distill.<tap>.loss_*`` terms
            (warm-up applied) and their components and the warm-up factor
            under names without ``loss`` (logged, not optimised). An
            ensemble in ``'loss'`` mode also logs each teacher's loss as
            ``distill.<tap>.teacher<i>.<name>`` (before the ensemble weight,
            the head weight and the warm-up).
        """
        teacher_logits = []
        if self.distill_losses:
            # The teachers first: their temporaries are freed before the
            # student's graph is built, which lowers the step's peak memory
            # (and, on CPU, its page faults: ~7% of a PSPNet R101->R18 step
            # at 512x1024). The teachers draw no random numbers (eval mode).
            taps = sorted({t for h in self.loss_heads.values() for t in h})
            with torch.no_grad(), self._teacher_autocast(inputs):
                teacher_logits = [
                    self.teacher_forward(inputs, taps, teacher)
                    for teacher in self.teachers
                ]
        student_logits, student_losses = self.student_forward_train(
            inputs, data_samples)
        losses = {f'student.{k}': v for k, v in student_losses.items()}
        if not self.distill_losses:
            return losses
        with torch.no_grad(), self._teacher_autocast(inputs):
            teacher_logits = [
                self.match_teacher(logits, student_logits)
                for logits in teacher_logits
            ]
        target = self.distill_target(data_samples)
        factor = self.warmup_factor()
        cache: dict = {}  # ensemble logits per (tap, T) of this step
        for name, loss_module in self.distill_losses.items():
            short_name = name[len('loss_'):]
            for tap, weight in self.loss_heads[name].items():
                term = self._ensemble.term(
                    loss_module, student_logits[tap],
                    [logits[tap] for logits in teacher_logits], target,
                    cache, tap)
                losses[f'distill.{tap}.{name}'] = term.value * (
                    factor * weight)
                for part, part_value in term.components.items():
                    losses[f'distill.{tap}.{short_name}_{part}'] = part_value
                for label, value in term.per_teacher.items():
                    losses[f'distill.{tap}.{label}.{short_name}'] = value
        losses['distill.warmup_factor'] = inputs.new_tensor(factor)
        return losses

    def predict(self, inputs: Tensor, data_samples: Optional[list] = None):
        return self.student.predict(inputs, data_samples)

    def _forward(self, inputs: Tensor, data_samples: Optional[list] = None):
        return self.student._forward(inputs, data_samples)

    def _teacher_autocast(self, inputs: Tensor):
        dtype = _AUTOCAST_DTYPES[self.teacher_autocast]
        if dtype is None:
            return contextlib.nullcontext()
        if dtype is False:
            return torch.autocast(inputs.device.type, enabled=False)
        return torch.autocast(inputs.device.type, dtype=dtype)

    # ------------------------------------------------------------------
    # the teacher follows device/dtype moves but never leaves eval mode
    # ------------------------------------------------------------------
    def _apply(self, fn, *args, **kwargs):
        super()._apply(fn, *args, **kwargs)
        for teacher in self._teachers:
            teacher._apply(fn, *args, **kwargs)
        return self

    def train(self, mode: bool = True) -> 'BaseDistiller':
        super().train(mode)
        for teacher in self._teachers:
            teacher.eval()
        return self

