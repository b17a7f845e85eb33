# Copyright (c) mmgdkd contributors. All rights reserved.
"""Tests for tools/dataset_converters/cityscapes.py."""
import json
import os.path as osp
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

pytest.importorskip('cityscapesscripts')

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
SCRIPT = osp.join(REPO, 'tools', 'dataset_converters', 'cityscapes.py')
H, W = 20, 40


def _write_polygons(path, objects):
    """A Cityscapes polygon file; later objects are drawn on top."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        json.dumps(
            dict(
                imgHeight=H,
                imgWidth=W,
                objects=[
                    dict(label=label, polygon=poly) for label, poly in objects
                ])))


def _rect(x0, y0, x1, y1):
    return [[x0, y0], [x1, y0], [x1, y1], [x0, y1]]


@pytest.fixture
def fake_cityscapes(tmp_path):
    gt = tmp_path / 'gtFine'
    # Top third sky, bottom two thirds road, a car on the road, the ego
    # vehicle along the bottom edge; the top-right corner stays unlabeled.
    _write_polygons(
        gt / 'train' / 'aachen' / 'aachen_000000_000019_gtFine_polygons.json',
        [('sky', _rect(0, 0, 29, 6)), ('road', _rect(0, 7, 39, 19)),
         ('car', _rect(10, 9, 19, 14)), ('ego vehicle', _rect(0, 17, 39, 19))])
    _write_polygons(
        gt / 'train' / 'bochum' / 'bochum_000000_000313_gtFine_polygons.json',
        [('road', _rect(0, 0, 39, 19))])
    _write_polygons(
        gt / 'val' / 'frankfurt' /
        'frankfurt_000000_000294_gtFine_polygons.json',
        [('sky', _rect(0, 0, 39, 9)), ('cargroup', _rect(0, 10, 39, 19))])
    return tmp_path


def _run(*args):
    return subprocess.run([sys.executable, SCRIPT, *map(str, args)],
                          capture_output=True,
                          text=True,
                          cwd=REPO,
                          timeout=120)


def _label(path):
    return np.array(Image.open(path))


def test_convert_polygons_in_parallel(fake_cityscapes):
    root = fake_cityscapes
    res = _run(root, '--nproc', 2)
    assert res.returncode == 0, res.stderr
    assert 'converted 3/3' in res.stdout

    aachen = _label(root / 'gtFine' / 'train' / 'aachen' /
                    'aachen_000000_000019_gtFine_labelTrainIds.png')
    assert aachen.shape == (H, W) and aachen.dtype == np.uint8
    assert aachen[2, 5] == 10  # sky
    assert aachen[2, 35] == 255  # unlabeled background
    assert aachen[8, 30] == 0  # road
    assert aachen[11, 15] == 13  # car drawn over the road
    assert aachen[18, 20] == 255  # ego vehicle is void
    assert set(np.unique(aachen).tolist()) == {0, 10, 13, 255}

    bochum = _label(root / 'gtFine' / 'train' / 'bochum' /
                    'bochum_000000_000313_gtFine_labelTrainIds.png')
    assert (bochum == 0).all()
    frankfurt = _label(root / 'gtFine' / 'val' / 'frankfurt' /
                       'frankfurt_000000_000294_gtFine_labelTrainIds.png')
    assert frankfurt[5, 5] == 10 and frankfurt[15, 5] == 13  # cargroup=car

    assert (root / 'train.txt').read_text().splitlines() == [
        'aachen/aachen_000000_000019', 'bochum/bochum_000000_000313'
    ]
    assert (root / 'val.txt').read_text().splitlines() == [
        'frankfurt/frankfurt_000000_000294'
    ]
    # No test split in the tree, so no (empty) list for it.
    assert not (root / 'test.txt').exists()


def test_out_dir_and_single_process(fake_cityscapes, tmp_path_factory):
    out = tmp_path_factory.mktemp('splits') / 'lists'
    res = _run(fake_cityscapes, '-o', out, '--nproc', 1)
    assert res.returncode == 0, res.stderr
    assert (out / 'train.txt').is_file() and (out / 'val.txt').is_file()
    assert not (fake_cityscapes / 'train.txt').exists()
    # Label maps still go next to the polygons.
    assert (fake_cityscapes / 'gtFine' / 'val' / 'frankfurt' /
            'frankfurt_000000_000294_gtFine_labelTrainIds.png').is_file()


def test_missing_annotation_dir(tmp_path):
    missing = tmp_path / 'nowhere'
    res = _run(missing)
    assert res.returncode != 0
    assert str(missing / 'gtFine') in res.stderr
    assert 'does not exist' in res.stderr


def test_no_polygon_files(tmp_path):
    (tmp_path / 'gtFine' / 'train' / 'aachen').mkdir(parents=True)
    res = _run(tmp_path, '--nproc', 2)
    assert res.returncode != 0
    assert str(tmp_path / 'gtFine') in res.stderr
    assert '_polygons.json' in res.stderr


def test_unknown_label_fails_instead_of_hanging(tmp_path):
    _write_polygons(
        tmp_path / 'gtFine' / 'train' / 'x' / 'x_000000_000019_gtFine_'
        'polygons.json', [('not-a-class', _rect(0, 0, 5, 5))])
    _write_polygons(
        tmp_path / 'gtFine' / 'train' / 'x' / 'x_000001_000019_gtFine_'
        'polygons.json', [('road', _rect(0, 0, 5, 5))])
    res = _run(tmp_path, '--nproc', 2)
    assert res.returncode != 0
    assert 'x_000000_000019_gtFine_polygons.json' in res.stderr
