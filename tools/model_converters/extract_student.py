# Copyright (c) mmgdkd contributors. All rights reserved.
"""Turn a distillation checkpoint that contains a teacher into a plain one.

mmgdkd saves student-only checkpoints by default. A checkpoint written with
``checkpoint_teacher=True``, or by another toolbox (MMRazor stores the
student under ``architecture.``), also holds the teacher; this keeps the
student's weights under plain host keys so MMSeg/MMPretrain tools load it.

Example::

    python tools/model_converters/extract_student.py \
        work_dirs/run/iter_80000.pth pspnet_r18_gdkd.pth
"""
import argparse
from collections import OrderedDict

import torch

from mmgdkd.engine.checkpoint import load_local_checkpoint
from mmgdkd.utils.known_warnings import silence_known_deprecations

STUDENT_PREFIXES = ('student.', 'architecture.')
TEACHER_PREFIXES = ('teacher.', )


def extract_student(state_dict: dict,
                    student_prefixes=STUDENT_PREFIXES,
                    teacher_prefixes=TEACHER_PREFIXES) -> OrderedDict:
    """Drop teacher keys and strip the student prefix from the rest."""
    student = OrderedDict()
    for key, value in state_dict.items():
        key = key[len('module.'):] if key.startswith('module.') else key
        if key.startswith(teacher_prefixes):
            continue
        for prefix in student_prefixes:
            if key.startswith(prefix):
                key = key[len(prefix):]
                break
        if key.startswith('data_preprocessor.'):
            continue
        if key in student:
            raise ValueError(f'two checkpoint keys map to student key {key!r}')
        student[key] = value
    if not student:
        raise ValueError('no student weights found in the checkpoint')
    return student


def main() -> None:
    silence_known_deprecations()
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('src', help='distillation checkpoint')
    parser.add_argument('dst', help='output student checkpoint')
    parser.add_argument(
        '--student-prefix', nargs='+', default=list(STUDENT_PREFIXES),
        help='key prefixes of the student (stripped)')
    parser.add_argument(
        '--teacher-prefix', nargs='+', default=list(TEACHER_PREFIXES),
        help='key prefixes of the teacher (dropped)')
    args = parser.parse_args()

    checkpoint = load_local_checkpoint(args.src, map_location='cpu')
    state = checkpoint.get('state_dict', checkpoint)
    student = extract_student(state, tuple(args.student_prefix),
                              tuple(args.teacher_prefix))
    out = {'state_dict': student, 'meta': checkpoint.get('meta', {})}
    torch.save(out, args.dst)
    dropped = len(state) - len(student)
    print(f'{args.dst}: {len(student)} student tensors kept, {dropped} '
          'teacher/other entries dropped')


if __name__ == '__main__':
    main()
