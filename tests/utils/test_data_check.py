# Copyright (c) mmgdkd contributors. All rights reserved.
"""check_data_folders: an empty or missing data folder is named."""
import os.path as osp
import re

import pytest
from mmengine.config import Config

from mmgdkd.utils import check_data_folders
from mmgdkd.utils.data_check import TEST_LOADERS


def cfg_for(data_root, split='train', wrap=False, **dataset):
    dataset = dict(
        type='CityscapesDataset', data_root=data_root,
        data_prefix=dict(img_path=f'leftImg8bit/{split}',
                         seg_map_path=f'gtFine/{split}'), **dataset)
    if wrap:
        dataset = dict(type='RepeatDataset', times=2, dataset=dataset)
    return Config(dict(train_dataloader=dict(dataset=dataset)))


def test_empty_folder_is_named(tmp_path):
    folder = tmp_path / 'leftImg8bit' / 'train'
    folder.mkdir(parents=True)
    (folder / 'notes.txt').write_text('not an image')
    with pytest.raises(FileNotFoundError, match=re.escape(
            f"train_dataloader.dataset.dataset: the image folder "
            f"'{folder}' holds no image ending in '_leftImg8bit.png'")):
        check_data_folders(cfg_for(str(tmp_path), wrap=True))


def test_missing_folder_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match=re.escape(
            f"'{tmp_path / 'leftImg8bit' / 'train'}' does not exist")):
        check_data_folders(cfg_for(str(tmp_path)))


def test_empty_annotation_file_is_named(tmp_path, cityscapes_root):
    ann = tmp_path / 'train.txt'
    ann.write_text('\n')
    with pytest.raises(FileNotFoundError,
                       match=re.escape(f"'{ann}' lists no image")):
        check_data_folders(cfg_for(cityscapes_root, ann_file=str(ann)))


def test_prepared_data_passes(cityscapes_root, tmp_path):
    check_data_folders(cfg_for(cityscapes_root))
    check_data_folders(cfg_for(cityscapes_root, split='val'))
    # only the loaders asked for are looked at
    check_data_folders(cfg_for(str(tmp_path)), TEST_LOADERS)
    # not an MMSeg folder dataset: left to its own checks
    check_data_folders(Config(dict(train_dataloader=dict(dataset=dict(
        type='CIFAR100', data_root=str(tmp_path))))))
    assert osp.isdir(cityscapes_root)
