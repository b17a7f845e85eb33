# Copyright (c) mmgdkd contributors. All rights reserved.
"""Resuming is refused when the checkpoint's config is another setup."""
import re

import pytest
import torch
from mmengine.config import Config

from mmgdkd.engine.checkpoint import CorruptCheckpointError
from mmgdkd.engine.resume import check_resume_setup, run_setup


def seg_model(depth):
    return dict(type='EncoderDecoder',
                backbone=dict(type='ResNetV1c', depth=depth),
                decode_head=dict(type='PSPHead', num_classes=19,
                                 channels=512),
                auxiliary_head=dict(type='FCNHead', num_classes=19))


def distill_cfg(loss='GDKDLoss', teacher_depth=101, **loss_options):
    return Config(dict(model=dict(
        type='SegDistiller', student=seg_model(18),
        teacher=seg_model(teacher_depth),
        teacher_ckpt='https://x/teacher_r101.pth',
        distill_losses=dict(loss_main=dict(type=loss, **loss_options)))))


def checkpoint_of(cfg: Config, path) -> str:
    torch.save({'state_dict': {}, 'meta': {'cfg': cfg.pretty_text,
                                           'iter': 2}}, str(path))
    return str(path)


def test_same_setup_resumes(tmp_path):
    ckpt = checkpoint_of(distill_cfg(k=3), tmp_path / 'iter_2.pth')
    check_resume_setup(distill_cfg(k=3), ckpt)
    # the teacher file may move (URL vs its download): same name, same teacher
    moved = distill_cfg(k=3)
    moved.model.teacher_ckpt = '/data/teacher_r101.pth'
    check_resume_setup(moved, ckpt)


@pytest.mark.parametrize('other,expected', [
    (dict(loss='KDLoss'), "distill_losses.loss_main: checkpoint k=3, "
     "type='GDKDLoss' vs this config type='KDLoss'"),
    (dict(k=5), 'k=3, type=\'GDKDLoss\' vs this config k=5'),
    (dict(teacher_depth=50, k=3), 'teacher: checkpoint EncoderDecoder '
     'backbone=ResNetV1c(depth=101)'),
])
def test_other_setup_is_refused_naming_both(tmp_path, other, expected):
    ckpt = checkpoint_of(distill_cfg(k=3), tmp_path / 'iter_2.pth')
    with pytest.raises(ValueError) as info:
        check_resume_setup(distill_cfg(**other), ckpt)
    message = str(info.value)
    assert message.startswith(f"refusing to resume '{ckpt}'")
    assert expected in message
    assert '--resume-any-setup' in message


def test_plain_model_against_distiller(tmp_path):
    ckpt = checkpoint_of(Config(dict(model=seg_model(18))),
                         tmp_path / 'iter_2.pth')
    with pytest.raises(ValueError, match=re.escape(
            'distiller: checkpoint (none) vs this config SegDistiller')):
        check_resume_setup(distill_cfg(k=3), ckpt)
    assert set(run_setup(Config(dict(model=seg_model(18))))) == {'model'}


def test_checkpoint_without_config_is_not_checked(tmp_path):
    path = str(tmp_path / 'bare.pth')
    torch.save({'state_dict': {}}, path)
    check_resume_setup(distill_cfg(k=3), path)
    open(path, 'wb').close()
    with pytest.raises(CorruptCheckpointError, match='corrupt or truncated'):
        check_resume_setup(distill_cfg(k=3), path)
