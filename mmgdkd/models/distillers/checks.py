# Copyright (c) mmgdkd contributors. All rights reserved.
"""Build-time checks of a distiller's configuration.

Everything a distillation run needs to be meaningful is checked when the
distiller is built, before any data is loaded: a mistake found at the first
training step costs a data-loader start-up and a teacher forward, and a
random teacher is not found at all (the run "works" and exits 0).
"""
from typing import Mapping, Optional

import torch.nn as nn

#: What to set to distil from a randomly initialised teacher on purpose.
ALLOW_UNTRAINED = 'allow_untrained_teacher'


def pretrained_init(model_cfg: Mapping,
                    pretrained_is_whole_model: bool = False) -> Optional[str]:
    """The checkpoint that initialises the whole model, if its config has one.

    Args:
        model_cfg: The teacher's model config.
        pretrained_is_whole_model: Whether the host turns a model-level
            ``pretrained`` into a whole-model ``Pretrained`` init (MMPretrain's
            ``ImageClassifier`` does; MMSeg's ``EncoderDecoder`` gives it to
            the backbone only, which leaves the heads random).

    Returns:
        str | None: The checkpoint of a model-level ``init_cfg`` of type
        ``'Pretrained'`` without ``prefix`` (a prefix loads a part only), or
        of ``pretrained`` where it means the whole model; else ``None``.
    """
    init_cfgs = model_cfg.get('init_cfg')
    if isinstance(init_cfgs, Mapping):
        init_cfgs = [init_cfgs]
    for init_cfg in init_cfgs or []:
        if isinstance(init_cfg, Mapping) and \
                init_cfg.get('type') == 'Pretrained' and \
                init_cfg.get('checkpoint') and not init_cfg.get('prefix'):
            return init_cfg['checkpoint']
    if pretrained_is_whole_model and model_cfg.get('pretrained'):
        return model_cfg['pretrained']
    return None


def check_teacher_weights(teacher_cfg: Mapping,
                          teacher_ckpt: Optional[str],
                          allow_untrained_teacher: bool,
                          pretrained_is_whole_model: bool = False) -> bool:
    """Refuse a teacher that would stay randomly initialised.

    Args:
        teacher_cfg: The teacher's model config.
        teacher_ckpt: The distiller's ``teacher_ckpt``.
        allow_untrained_teacher: The distiller's opt-out (tests, timing).
        pretrained_is_whole_model: See :func:`pretrained_init`.

    Returns:
        bool: Whether the teacher must run its own ``init_weights`` to load
        its whole-model ``Pretrained`` init (no ``teacher_ckpt`` given). The
        teacher is not a submodule of the distiller, so the runner's
        ``init_weights`` never reaches it.

    Raises:
        ValueError: No ``teacher_ckpt``, no whole-model pretrained init and
            ``allow_untrained_teacher`` not set.
    """
    if teacher_ckpt:
        return False
    if pretrained_init(teacher_cfg, pretrained_is_whole_model):
        return True
    if allow_untrained_teacher:
        return False
    backbone_only = ''
    backbone = teacher_cfg.get('backbone') or {}
    if teacher_cfg.get('pretrained') or (
            isinstance(backbone, Mapping) and backbone.get('init_cfg')):
        backbone_only = (' (its `pretrained`/backbone init_cfg initialises '
                         'the backbone only; the heads would be random)')
    raise ValueError(
        f'teacher_ckpt is {teacher_ckpt!r} and the teacher '
        f'({teacher_cfg.get("type")}) has no whole-model pretrained '
        f'init_cfg{backbone_only}: the student would be distilled from a '
        'randomly initialised teacher. Give model.teacher_ckpt (path or URL '
        'of the trained teacher), or set '
        f'model.{ALLOW_UNTRAINED}=True if a random teacher is what you want '
        '(tests, timing).')


def check_losses_fit_classes(distill_losses: Mapping[str, nn.Module],
                             num_classes: Optional[int]) -> None:
    """Check every class-count-dependent loss option against ``C``.

    A loss declares its own constraints with a ``check_num_classes(C)``
    method that raises ``ValueError`` naming the option and its value; this
    adds which loss of the config it is.

    Args:
        distill_losses: ``{name: loss module}`` of the distiller.
        num_classes: ``C`` of the model pair (``None``: unknown, skipped).
    """
    if num_classes is None:
        return
    for name, loss in distill_losses.items():
        check = getattr(loss, 'check_num_classes', None)
        if check is None:
            continue
        try:
            check(num_classes)
        except ValueError as err:
            raise ValueError(
                f'distill_losses.{name} ({type(loss).__name__}): {err} '
                f'(the teacher and student predict {num_classes} classes)'
            ) from err
