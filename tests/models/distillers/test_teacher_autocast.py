# Copyright (c) mmgdkd contributors. All rights reserved.
"""teacher_autocast: the teacher follows the ambient autocast by default
('inherit'), or runs in the precision it names."""
import pytest
import torch
from mmengine.structures import PixelData
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample

from helpers import PSPNET_R18, TINY_CROP, tiny_segmentor
from mmgdkd.models.distillers.utils import load_model_cfg


def build(**kwargs):
    seg = load_model_cfg(dict(cfg_path=PSPNET_R18,
                              **tiny_segmentor())).to_dict()
    torch.manual_seed(0)
    return MODELS.build(dict(
        type='SegDistiller', student=seg, teacher=seg, teacher_ckpt=None,
        allow_untrained_teacher=True,
        distill_losses=dict(loss_kd=dict(type='KDLoss', temperature=1.0)),
        **kwargs))


def batch():
    h, w = TINY_CROP
    sample = SegDataSample()
    sample.gt_sem_seg = PixelData(data=torch.randint(0, 19, (1, h, w)))
    sample.set_metainfo(dict(img_shape=(h, w), ori_shape=(h, w),
                             pad_shape=(h, w)))
    return torch.randn(2, 3, h, w), [sample, sample]


def teacher_dtypes(distiller, outer):
    """Dtypes of the teacher's logits in one loss step under ``outer``
    autocast (``None``: none)."""
    seen = []
    forward = distiller.teacher_forward

    def spy(*args):
        logits = forward(*args)
        seen.extend(v.dtype for v in logits.values())
        return logits

    distiller.teacher_forward = spy
    inputs, samples = batch()
    if outer is None:
        losses = distiller.loss(inputs, samples)
    else:
        with torch.autocast('cpu', dtype=outer):
            losses = distiller.loss(inputs, samples)
    assert all(torch.isfinite(v).all() for v in losses.values())
    return set(seen)


@pytest.mark.filterwarnings('ignore:teacher_ckpt is None')
@pytest.mark.parametrize('option,outer,expected', [
    ('inherit', torch.bfloat16, torch.bfloat16),  # follows --amp
    ('inherit', None, torch.float32),
    ('float32', torch.bfloat16, torch.float32),
    (None, torch.bfloat16, torch.float32),  # the former default
    ('bfloat16', None, torch.bfloat16),
    ('float16', torch.bfloat16, torch.float16),
])
def test_teacher_precision(option, outer, expected):
    kwargs = {} if option == 'inherit' else dict(teacher_autocast=option)
    distiller = build(**kwargs)
    assert distiller.teacher_autocast == (option or 'float32')
    assert teacher_dtypes(distiller, outer) == {expected}


@pytest.mark.filterwarnings('ignore:teacher_ckpt is None')
def test_bad_option():
    with pytest.raises(ValueError, match=r"\['inherit', 'float32', "
                       r"'float16', 'bfloat16'\] or None, got 'fp8'"):
        build(teacher_autocast='fp8')
