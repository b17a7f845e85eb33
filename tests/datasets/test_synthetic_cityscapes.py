# Copyright (c) mmgdkd contributors. All rights reserved.
"""Tests for the procedural Cityscapes-format data set."""
import json
import os
import os.path as osp
import re

import cv2
import numpy as np
import pytest

from mmgdkd.datasets import CLASS_NAMES, generate_cityscapes
from mmgdkd.datasets.synthetic_cityscapes import META_FILE, render_scene

NUM_TRAIN, NUM_VAL = 5, 3
SIZE = (128, 256)
REQUIRED = ('road', 'sidewalk', 'building', 'vegetation', 'sky', 'car',
            'person', 'pole', 'traffic sign')


def _tree_files(root):
    """Every file under ``root`` as {relative path: bytes}."""
    out = {}
    for dirpath, _, names in os.walk(root):
        for name in names:
            path = osp.join(dirpath, name)
            with open(path, 'rb') as f:
                out[osp.relpath(path, root)] = f.read()
    return out


def _mtimes(root):
    return {
        osp.join(d, n): os.stat(osp.join(d, n)).st_mtime_ns
        for d, _, names in os.walk(root)
        for n in names
    }


@pytest.fixture(scope='module')
def tree(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('synth') / 'cityscapes')
    info = generate_cityscapes(
        root, num_train=NUM_TRAIN, num_val=NUM_VAL, size=SIZE, seed=3)
    return root, info


def test_class_names():
    assert len(CLASS_NAMES) == 19
    assert CLASS_NAMES[0] == 'road' and CLASS_NAMES[10] == 'sky'
    assert CLASS_NAMES[13] == 'car' and CLASS_NAMES[18] == 'bicycle'


def test_layout_and_names(tree):
    root, info = tree
    assert not info['reused']
    assert info['num_written'] == NUM_TRAIN + NUM_VAL
    assert info['num_files'] == 2 * (NUM_TRAIN + NUM_VAL)
    assert info['img_dir'] == osp.join(root, 'leftImg8bit')
    assert info['ann_dir'] == osp.join(root, 'gtFine')
    stem = re.compile(r'^synth_\d{6}_\d{6}$')
    for split, num in (('train', NUM_TRAIN), ('val', NUM_VAL)):
        imgs = sorted(
            os.listdir(osp.join(root, 'leftImg8bit', split, 'synth')))
        segs = sorted(os.listdir(osp.join(root, 'gtFine', split, 'synth')))
        assert len(imgs) == len(segs) == num
        for img, seg in zip(imgs, segs):
            assert img.endswith('_leftImg8bit.png')
            assert seg.endswith('_gtFine_labelTrainIds.png')
            assert stem.match(img[:-len('_leftImg8bit.png')])
            assert (img[:-len('_leftImg8bit.png')] ==
                    seg[:-len('_gtFine_labelTrainIds.png')])
    assert 'synth_000000_000019_leftImg8bit.png' in os.listdir(
        osp.join(root, 'leftImg8bit', 'train', 'synth'))
    with open(osp.join(root, META_FILE)) as f:
        meta = json.load(f)
    assert meta['complete'] is True
    assert meta['counts'] == dict(train=NUM_TRAIN, val=NUM_VAL)
    assert meta['params']['size'] == list(SIZE)


def test_images_and_labels(tree):
    root, _ = tree
    for split in ('train', 'val'):
        img_dir = osp.join(root, 'leftImg8bit', split, 'synth')
        for name in os.listdir(img_dir):
            img = cv2.imread(osp.join(img_dir, name), cv2.IMREAD_UNCHANGED)
            assert img.dtype == np.uint8 and img.shape == SIZE + (3, )
            # Not a flat or degenerate image.
            assert img.std() > 10
            seg_name = name.replace('_leftImg8bit.png',
                                    '_gtFine_labelTrainIds.png')
            seg = cv2.imread(
                osp.join(root, 'gtFine', split, 'synth', seg_name),
                cv2.IMREAD_UNCHANGED)
            assert seg.dtype == np.uint8 and seg.shape == SIZE
            values = set(np.unique(seg).tolist())
            assert values <= set(range(19)) | {255}


def test_required_classes_present():
    counts = dict.fromkeys(REQUIRED, 0)
    n = 10
    for i in range(n):
        img, lab = render_scene(i, seed=1, size=SIZE)
        assert img.shape == SIZE + (3, ) and lab.shape == SIZE
        present = set(np.unique(lab).tolist())
        for name in REQUIRED:
            counts[name] += CLASS_NAMES.index(name) in present
    # "Most images" for every required class.
    assert all(c >= 0.7 * n for c in counts.values()), counts


def test_render_scene_deterministic():
    a_img, a_lab = render_scene(7, seed=2, size=(96, 160))
    b_img, b_lab = render_scene(7, seed=2, size=(96, 160))
    c_img, _ = render_scene(8, seed=2, size=(96, 160))
    np.testing.assert_array_equal(a_img, b_img)
    np.testing.assert_array_equal(a_lab, b_lab)
    assert not np.array_equal(a_img, c_img)


def test_same_bytes_in_two_trees(tmp_path):
    kw = dict(num_train=2, num_val=1, size=(64, 128), seed=5)
    generate_cityscapes(str(tmp_path / 'a'), **kw)
    generate_cityscapes(str(tmp_path / 'b'), **kw)
    a, b = _tree_files(tmp_path / 'a'), _tree_files(tmp_path / 'b')
    assert sorted(a) == sorted(b) and len(a) == 2 * 3 + 1
    assert a == b


def test_reuse_does_not_rewrite(tree):
    root, _ = tree
    before = _mtimes(root)
    info = generate_cityscapes(
        root, num_train=NUM_TRAIN, num_val=NUM_VAL, size=SIZE, seed=3)
    assert info['reused'] and info['num_written'] == 0
    assert _mtimes(root) == before


def test_changed_params_regenerate(tmp_path):
    root = str(tmp_path / 'data')
    kw = dict(size=(64, 128), seed=0)
    generate_cityscapes(root, num_train=3, num_val=1, **kw)
    train_dir = osp.join(root, 'leftImg8bit', 'train', 'synth')
    first = osp.join(train_dir, 'synth_000000_000019_leftImg8bit.png')
    third = osp.join(train_dir, 'synth_000002_000019_leftImg8bit.png')
    mtime = os.stat(first).st_mtime_ns
    with open(first, 'rb') as f:
        seed0 = f.read()

    # Fewer images: the extra one goes, the shared ones stay untouched.
    info = generate_cityscapes(root, num_train=2, num_val=1, **kw)
    assert not info['reused'] and info['num_written'] == 0
    assert not osp.exists(third)
    assert os.stat(first).st_mtime_ns == mtime

    # Another seed: everything is re-rendered.
    info = generate_cityscapes(
        root, num_train=2, num_val=1, size=(64, 128), seed=1)
    assert info['num_written'] == 3
    with open(first, 'rb') as f:
        assert f.read() != seed0
    assert len(_tree_files(root)) == 2 * 3 + 1


def test_interrupted_tree_is_regenerated(tmp_path):
    root = str(tmp_path / 'data')
    kw = dict(num_train=2, num_val=0, size=(64, 128))
    generate_cityscapes(root, **kw)
    meta_path = osp.join(root, META_FILE)
    with open(meta_path) as f:
        meta = json.load(f)
    meta['complete'] = False
    with open(meta_path, 'w') as f:
        json.dump(meta, f)
    info = generate_cityscapes(root, **kw)
    assert info['num_written'] == 2
    with open(meta_path) as f:
        assert json.load(f)['complete'] is True


def test_refuses_foreign_tree(tmp_path):
    foreign = tmp_path / 'leftImg8bit' / 'train' / 'aachen'
    foreign.mkdir(parents=True)
    real = foreign / 'aachen_000000_000019_leftImg8bit.png'
    real.write_bytes(b'not ours')
    with pytest.raises(FileExistsError, match='synthetic_meta.json'):
        generate_cityscapes(str(tmp_path), num_train=1, num_val=0)
    assert real.read_bytes() == b'not ours'


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError):
        generate_cityscapes(str(tmp_path), size=(8, 8))
    with pytest.raises(ValueError):
        generate_cityscapes(str(tmp_path), cities=('bad_name', ))


def test_multiple_cities(tmp_path):
    root = str(tmp_path)
    generate_cityscapes(
        root, num_train=3, num_val=0, size=(64, 128), cities=('aa', 'bb'))
    assert sorted(os.listdir(osp.join(root, 'leftImg8bit',
                                      'train'))) == ['aa', 'bb']
    assert sorted(os.listdir(osp.join(root, 'gtFine', 'train', 'aa'))) == [
        'aa_000000_000019_gtFine_labelTrainIds.png',
        'aa_000001_000019_gtFine_labelTrainIds.png'
    ]


def test_mmseg_cityscapes_dataset_reads_tree(tree):
    import mmgdkd  # noqa: F401  (compat shims before mmseg is imported)
    from mmseg.datasets import CityscapesDataset
    from mmseg.datasets.transforms import LoadAnnotations
    from mmcv.transforms import LoadImageFromFile

    root, _ = tree
    dataset = CityscapesDataset(
        data_root=root,
        data_prefix=dict(
            img_path='leftImg8bit/train', seg_map_path='gtFine/train'),
        pipeline=[])
    assert len(dataset) == NUM_TRAIN
    assert dataset.metainfo['classes'] == CLASS_NAMES
    info = dataset[0]
    assert info['img_path'].endswith('_leftImg8bit.png')
    assert info['seg_map_path'].endswith('_gtFine_labelTrainIds.png')
    assert osp.isfile(info['img_path']) and osp.isfile(info['seg_map_path'])
    assert (osp.basename(
        info['img_path'])[:-len('_leftImg8bit.png')] == osp.basename(
            info['seg_map_path'])[:-len('_gtFine_labelTrainIds.png')])

    # And the standard loading transforms decode both files.
    loaded = LoadAnnotations()(LoadImageFromFile()(dict(info)))
    assert loaded['img'].shape == SIZE + (3, )
    assert loaded['gt_seg_map'].shape == SIZE
    assert set(np.unique(loaded['gt_seg_map']).tolist()) <= (
        set(range(19)) | {255})


def test_parallel_workers_write_the_same_files(tmp_path):
    one, two = str(tmp_path / 'one'), str(tmp_path / 'two')
    generate_cityscapes(one, num_train=3, num_val=2, size=(32, 64), seed=4)
    info = generate_cityscapes(two, num_train=3, num_val=2, size=(32, 64),
                               seed=4, workers=2)
    assert info['num_written'] == 5
    names = sorted(
        osp.relpath(osp.join(d, n), one) for d, _, files in os.walk(one)
        for n in files if n.endswith('.png'))
    assert len(names) == 10
    for name in names:
        with open(osp.join(one, name), 'rb') as a, \
                open(osp.join(two, name), 'rb') as b:
            assert a.read() == b.read(), name
