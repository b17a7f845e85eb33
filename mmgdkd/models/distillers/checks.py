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


def check_same_preprocessor(given, student_pre: Optional[dict]) -> None:
    """The batches the student trains on must be the ones it expects.

    mmengine's Runner passes a config's top-level ``data_preprocessor``
    to the model; if it disagrees with the student's own (e.g. a crop
    ``size`` changed in one place only), every batch would silently be
    padded or normalised differently from the student's config.
    """
    if not isinstance(given, dict) or not student_pre:
        return
    differing = {
        key: (given[key], student_pre[key])
        for key in set(given) & set(student_pre)
        if _as_list(given[key]) != _as_list(student_pre[key])
    }
    if differing:
        detail = '; '.join(f'{k}: distiller {a!r} vs student {b!r}'
                           for k, (a, b) in sorted(differing.items()))
        raise ValueError(
            'the distiller\'s data_preprocessor (the config\'s top-level '
            '`data_preprocessor` or `model.data_preprocessor`) differs '
            f'from the student\'s: {detail}. Set both to the same values.')


def check_teacher_preprocessor(student_pre: Optional[dict],
                               teacher_pre: Optional[dict],
                               label: str = 'teacher') -> None:
    """The teacher (``label``: ``'teacher2'``... in an ensemble) sees the
    student's normalised input: their normalisations must agree."""
    if not student_pre or not teacher_pre:
        return
    for key in ('mean', 'std', 'bgr_to_rgb', 'rgb_to_bgr', 'to_rgb'):
        s_val, t_val = student_pre.get(key), teacher_pre.get(key)
        if s_val is not None and t_val is not None and \
                _as_list(s_val) != _as_list(t_val):
            raise ValueError(
                f'{label} and student data_preprocessor differ in {key}: '
                f'{label} {t_val}, student {s_val}; the {label} receives '
                'the student\'s normalised input')


def _as_list(value) -> list:
    """Compare config values regardless of list/tuple/scalar form."""
    return list(value) if isinstance(value, (list, tuple)) else [value]


def check_distill_loss_name(name: str) -> None:
    """A ``distill_losses`` key is ``'loss_<short>'``: mmengine optimises the
    sum of the keys containing ``loss``, and ``<short>`` names the logged
    (not optimised) components and per-teacher terms, so it must not."""
    if not name.startswith('loss_'):
        raise ValueError(
            f'distill_losses key {name!r} must start with "loss_" '
            '(mmengine sums only keys containing "loss")')
    short = name[len('loss_'):]
    if 'loss' in short:
        raise ValueError(
            f'distill_losses key {name!r}: the part after "loss_" must not '
            'contain "loss" (it names logged terms such as '
            f'distill.<tap>.teacher1.{short}, which mmengine would add to '
            'the total loss)')
