# Copyright (c) mmgdkd contributors. All rights reserved.
"""State-dict hooks of a distiller: checkpoints are the student's.

A distiller's ``state_dict`` has the student's plain host keys (so a
checkpoint loads into the host's own tools), plus, with
``checkpoint_teacher=True``, the teachers under ``teacher.`` (one teacher)
or ``teacher1.``, ``teacher2.``... (an ensemble). Loading accepts the same.
"""
import torch.nn as nn

from .teacher_ensemble import teacher_label

_STUDENT = 'student.'


def student_state_dict_hook(module: nn.Module, state_dict: dict,
                            prefix: str, local_metadata: dict) -> None:
    """Give checkpoints the student's plain keys (teacher only if asked)."""
    student_prefix = prefix + _STUDENT
    items = list(state_dict.items())
    state_dict.clear()
    for key, value in items:
        if key.startswith(student_prefix):
            key = prefix + key[len(student_prefix):]
        state_dict[key] = value
    metadata = getattr(state_dict, '_metadata', None)
    if metadata is not None:
        for key in [k for k in metadata if k == prefix + 'student' or
                    k.startswith(student_prefix)]:
            new_key = (prefix[:-1] if key == prefix + 'student' else prefix +
                       key[len(student_prefix):])
            metadata[new_key] = metadata.pop(key)
    if module.checkpoint_teacher:
        for index, teacher in enumerate(module.teachers):
            teacher_prefix = teacher_key_prefix(index, len(module.teachers))
            for key, value in teacher.state_dict().items():
                state_dict[prefix + teacher_prefix + key] = value


def teacher_key_prefix(index: int, num_teachers: int) -> str:
    """``teacher.`` (one teacher) or ``teacher1.``, ``teacher2.``..."""
    return teacher_label(index, num_teachers) + '.'


def route_loaded_keys_hook(module: nn.Module, state_dict: dict,
                           prefix: str, local_metadata: dict, strict: bool,
                           missing_keys: list, unexpected_keys: list,
                           error_msgs: list) -> None:
    """Accept plain student keys; load ``teacher.*`` keys (``teacher<i>.*``
    for an ensemble) into the teachers."""
    num = len(module.teachers)
    teacher_prefixes = [
        prefix + teacher_key_prefix(i, num) for i in range(num)
    ]
    student_prefix = prefix + _STUDENT
    teacher_states = [{} for _ in range(num)]
    for key in [k for k in state_dict if k.startswith(prefix)]:
        owner = next((i for i, p in enumerate(teacher_prefixes)
                      if key.startswith(p)), None)
        if owner is not None:
            teacher_states[owner][key[len(teacher_prefixes[owner]):]] = \
                state_dict.pop(key)
        elif not key.startswith(student_prefix):
            state_dict[student_prefix + key[len(prefix):]] = state_dict.pop(
                key)
    for teacher, teacher_state in zip(module.teachers, teacher_states):
        if teacher_state:
            teacher.load_state_dict(teacher_state, strict=True)
