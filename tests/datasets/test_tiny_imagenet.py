# Copyright (c) mmgdkd contributors. All rights reserved.
"""Tiny-ImageNet val layout converter on a generated miniature."""
import importlib.util
import os
import os.path as osp
import sys

import numpy as np
import pytest
from PIL import Image

from helpers import REPO_ROOT
from mmgdkd.datasets.tiny_imagenet import organize_val, read_val_annotations

WNIDS = ['n01443537', 'n01629819', 'n01641577']


def make_tiny(root, per_class=2):
    """train/<wnid>/images/*.JPEG, val/images/*.JPEG + val_annotations.txt"""
    rng = np.random.default_rng(0)
    lines = []
    for c, wnid in enumerate(WNIDS):
        img_dir = osp.join(root, 'train', wnid, 'images')
        os.makedirs(img_dir)
        with open(osp.join(root, 'train', wnid, f'{wnid}_boxes.txt'),
                  'w') as f:
            f.write('')
        for i in range(per_class):
            Image.fromarray(rng.integers(0, 255, (8, 8, 3), np.uint8)).save(
                osp.join(img_dir, f'{wnid}_{i}.JPEG'))
    os.makedirs(osp.join(root, 'val', 'images'))
    for i in range(per_class * len(WNIDS)):
        wnid = WNIDS[(i * 2) % len(WNIDS)]
        name = f'val_{i}.JPEG'
        Image.fromarray(np.full((8, 8, 3), i, np.uint8)).save(
            osp.join(root, 'val', 'images', name))
        lines.append(f'{name}\t{wnid}\t0\t1\t7\t6\n')
    with open(osp.join(root, 'val', 'val_annotations.txt'), 'w') as f:
        f.writelines(lines)
    return lines


def test_organize_val_and_mmpretrain_reads_it(tmp_path):
    root = str(tmp_path / 'tiny-imagenet-200')
    lines = make_tiny(root)
    counts = organize_val(root)
    assert counts == {w: 2 for w in WNIDS}
    for line in lines:
        name, wnid = line.split('\t')[:2]
        out = osp.join(root, 'val_classes', wnid, name)
        assert osp.isfile(out)
        # same pixels as the source, which is still there
        src = osp.join(root, 'val', 'images', name)
        assert np.array_equal(np.asarray(Image.open(out)),
                              np.asarray(Image.open(src)))
    from mmpretrain.datasets import CustomDataset
    train = CustomDataset(data_root=root, data_prefix='train')
    val = CustomDataset(data_root=root, data_prefix='val_classes')
    assert train.CLASSES == val.CLASSES == tuple(WNIDS)
    assert len(train) == 6 and len(val) == 6
    for i in range(len(val)):
        info = val.get_data_info(i)
        assert osp.basename(osp.dirname(info['img_path'])) == \
            WNIDS[info['gt_label']]


def test_errors(tmp_path):
    root = str(tmp_path / 'tiny')
    make_tiny(root)
    with pytest.raises(ValueError, match="mode must be 'link' or 'copy'"):
        organize_val(root, mode='move')
    organize_val(root, mode='copy')
    with pytest.raises(ValueError, match='val_classes is not empty'):
        organize_val(root)
    os.remove(osp.join(root, 'val', 'images', 'val_0.JPEG'))
    with pytest.raises(ValueError, match='val_0.JPEG is listed'):
        organize_val(root, out_dir=str(tmp_path / 'other'))
    with open(osp.join(root, 'val', 'val_annotations.txt'), 'a') as f:
        f.write('val_9.JPEG\tn99999999\t0\t0\t1\t1\n')
    with pytest.raises(ValueError, match="not among the train classes.*"
                       "n99999999"):
        organize_val(root, out_dir=str(tmp_path / 'other'))
    with open(osp.join(root, 'val', 'val_annotations.txt'), 'w') as f:
        f.write('lonely\n')
    with pytest.raises(ValueError, match=r"val_annotations.txt:1: expected"):
        read_val_annotations(osp.join(root, 'val'))
    with pytest.raises(FileNotFoundError, match='val_annotations.txt'):
        organize_val(str(tmp_path / 'missing'))


def test_command_line(tmp_path, monkeypatch, capsys):
    root = str(tmp_path / 'tiny-imagenet-200')
    make_tiny(root)
    path = osp.join(REPO_ROOT, 'tools', 'dataset_converters',
                    'tiny_imagenet.py')
    spec = importlib.util.spec_from_file_location('tiny_cli', path)
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    out = str(tmp_path / 'out')
    monkeypatch.setattr(sys, 'argv', [path, root, '--out-dir', out,
                                      '--copy'])
    tool.main()
    assert '6 images in 3 class folders' in capsys.readouterr().out
    assert sorted(os.listdir(out)) == WNIDS


def test_transfer_config_reads_the_converted_layout(tmp_path):
    """The Tiny-ImageNet config's datasets and pipelines on a miniature."""
    from mmengine.config import Config
    from mmpretrain.registry import DATASETS
    root = str(tmp_path / 'tiny-imagenet-200')
    make_tiny(root)
    organize_val(root)
    cfg = Config.fromfile(osp.join(
        REPO_ROOT, 'configs', 'gdkd', 'resnet34_resnet18_tinyimagenet.py'))
    for loader in (cfg.train_dataloader, cfg.val_dataloader):
        dataset = DATASETS.build(dict(loader.dataset, data_root=root))
        assert len(dataset) == 6
        sample = dataset[0]
        assert tuple(sample['inputs'].shape) == (3, 224, 224)
        assert 0 <= sample['data_samples'].gt_label.item() < 3


def test_val_missing_a_train_class_is_rejected(tmp_path):
    """CustomDataset numbers classes by the folders it finds: a train class
    with no validation image would shift every later val label."""
    root = str(tmp_path / 'tiny')
    make_tiny(root)
    with open(osp.join(root, 'val', 'val_annotations.txt')) as f:
        lines = [ln for ln in f if WNIDS[1] not in ln]
    with open(osp.join(root, 'val', 'val_annotations.txt'), 'w') as f:
        f.writelines(lines)
    with pytest.raises(ValueError, match="train classes without a "
                       "validation image.*n01629819"):
        organize_val(root)
    assert not osp.exists(osp.join(root, 'val_classes'))
