# Copyright (c) mmgdkd contributors. All rights reserved.
"""CIFAR-10 AutoAugment policy and Cutout of the augmented CIFAR teachers,
against torchvision's (the reference's) definitions."""
import numpy as np
import pytest
import torch
from mmpretrain.registry import TRANSFORMS
from PIL import Image

import mmgdkd.datasets.transforms  # noqa: F401  (registers the transforms)
from mmgdkd.datasets.transforms import CenterCutout, cifar10_policies
from mmgdkd.datasets.transforms.cifar_autoaugment import CIFAR10_POLICY

tv = pytest.importorskip('torchvision.transforms')
TF = pytest.importorskip('torchvision.transforms.functional')


def test_policy_table_is_torchvisions():
    ref = tv.AutoAugment(tv.AutoAugmentPolicy.CIFAR10, fill=128)
    assert tuple(ref.policies) == CIFAR10_POLICY


def test_magnitudes_are_torchvisions_bins():
    space = tv.AutoAugment()._augmentation_space(10, (32, 32))
    ours = cifar10_policies(32)
    for sub, ops in zip(CIFAR10_POLICY, ours):
        for (name, prob, b), op in zip(sub, ops):
            assert op['prob'] == prob
            if b is None:
                continue
            mags, signed = space[name]
            want = float(mags[b])
            if name.startswith('Translate'):
                assert op['magnitude'] * 32 == int(want)  # pixels, truncated
            elif name.startswith('Shear'):
                assert op['magnitude'] == pytest.approx(want)
            elif name == 'Rotate':
                assert op['angle'] == pytest.approx(want)
            elif name == 'Posterize':
                assert op['bits'] == int(want)
            elif name == 'Solarize':
                assert op['thr'] == pytest.approx(want)
            else:
                assert op['magnitude'] == pytest.approx(want)
            # torchvision flips signed magnitudes with probability 0.5 and
            # never the unsigned ones (posterize bits, solarize threshold)
            built = TRANSFORMS.build(op)
            assert built.random_negative_prob == (0.5 if signed else 0.0)


def _apply(op: dict, img: np.ndarray, negative: bool = False) -> np.ndarray:
    op = dict(op, prob=1.0)
    if 'magnitude' in op or 'angle' in op:
        op['random_negative_prob'] = 1.0 if negative else 0.0
    out = TRANSFORMS.build(dict(op, pad_val=128) if op['type'] in (
        'Shear', 'Translate', 'Rotate') else op)(dict(img=img.copy()))
    return out['img']


@pytest.mark.parametrize('name,b,tv_fn', [
    ('Posterize', 7, lambda im, m: TF.posterize(im, int(m))),
    ('Solarize', 8, lambda im, m: TF.solarize(im, float(m))),
    ('Brightness', 7, lambda im, m: TF.adjust_brightness(im, 1 + float(m))),
    ('Sharpness', 5, lambda im, m: TF.adjust_sharpness(im, 1 + float(m))),
    ('TranslateY', 9, lambda im, m: TF.affine(
        im, 0.0, [0, int(m)], 1.0, [0.0, 0.0],
        interpolation=TF.InterpolationMode.NEAREST, fill=128)),
])
def test_operations_match_torchvision_pixels(name, b, tv_fn):
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    space = tv.AutoAugment()._augmentation_space(10, (32, 32))
    op = next(o for sub, ops in zip(CIFAR10_POLICY, cifar10_policies())
              for (n, _, bb), o in zip(sub, ops) if n == name and bb == b)
    want = np.asarray(tv_fn(Image.fromarray(img), space[name][0][b]))
    got = _apply(op, img)
    diff = np.abs(got.astype(int) - want.astype(int))
    if name == 'Sharpness':  # PIL leaves the 1-pixel border unsharpened
        diff = diff[1:-1, 1:-1]
    assert diff.max() == 0, name


def test_cutout_distribution_and_clipping():
    np.random.seed(0)
    cut = CenterCutout(n_holes=1, length=16)
    areas, centres = [], []
    for _ in range(400):
        out = cut(dict(img=np.full((32, 32, 3), 7, np.uint8)))['img']
        hole = (out == 0).all(-1)
        assert ((out == 0) | (out == 7)).all()
        ys, xs = np.nonzero(hole)
        areas.append(hole.sum())
        # a clipped square: the hole is a full rectangle
        assert hole.sum() == (ys.max() - ys.min() + 1) * (
            xs.max() - xs.min() + 1)
        centres.append((ys.min() + ys.max()) / 2)
    assert max(areas) == 256 and min(areas) < 100  # border holes shrink
    assert np.mean(areas) == pytest.approx(
        np.mean([(min(y + 8, 32) - max(y - 8, 0)) for y in range(32)])**2,
        rel=0.15)
    with pytest.raises(ValueError, match='length must be an int >= 1'):
        CenterCutout(length=0)


def test_teacher_pipeline_builds_and_runs():
    from mmengine.config import Config
    from mmengine.dataset import Compose

    from helpers import REPO_ROOT
    cfg = Config.fromfile(
        f'{REPO_ROOT}/configs/cifar_teachers/resnet32x4_aug_240e_cifar100.py')
    assert [t['type'] for t in cfg.train_pipeline] == [
        'RandomCrop', 'RandomFlip', 'CIFAR10AutoAugment', 'CenterCutout',
        'PackInputs'
    ]
    pipeline = Compose([TRANSFORMS.build(t) for t in cfg.train_pipeline])
    torch.manual_seed(0)
    np.random.seed(0)
    img = np.random.randint(0, 256, (32, 32, 3), np.uint8)
    out = pipeline(dict(img=img, img_shape=(32, 32), ori_shape=(32, 32),
                        gt_label=3))
    assert tuple(out['inputs'].shape) == (3, 32, 32)
