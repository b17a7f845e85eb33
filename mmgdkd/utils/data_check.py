# Copyright (c) mmgdkd contributors. All rights reserved.
"""Check a config's data folders before a run builds its data loaders.

An MMSeg dataset over an empty folder fails deep inside mmengine with
``need at least one array to concatenate``; this names the folder instead.
"""
import inspect
import os
import os.path as osp
from typing import Iterator, List, Mapping, Optional, Tuple

from mmengine.config import Config

#: The dataloaders each tool builds.
TRAIN_LOADERS = ('train_dataloader', 'val_dataloader')
TEST_LOADERS = ('test_dataloader', )


def _datasets(cfg: Mapping, where: str) -> Iterator[Tuple[str, Mapping]]:
    """Every dataset config under ``cfg``, through dataset wrappers."""
    if not isinstance(cfg, Mapping):
        return
    if isinstance(cfg.get('dataset'), Mapping):  # RepeatDataset, ...
        yield from _datasets(cfg['dataset'], f'{where}.dataset')
    if isinstance(cfg.get('datasets'), (list, tuple)):  # ConcatDataset
        for i, sub in enumerate(cfg['datasets']):
            yield from _datasets(sub, f'{where}.datasets[{i}]')
    if 'dataset' not in cfg and 'datasets' not in cfg:
        yield where, cfg


def _seg_dataset_class(type_name) -> Optional[type]:
    """The MMSeg dataset class of ``type_name``, if it is one."""
    try:
        from mmseg.datasets import BaseSegDataset
        from mmseg.registry import DATASETS
    except ImportError:  # pragma: no cover - mmseg is a requirement
        return None
    cls = DATASETS.get(type_name) if isinstance(type_name, str) else type_name
    if isinstance(cls, type) and issubclass(cls, BaseSegDataset):
        return cls
    return None


def _default(cls: type, name: str, fallback=None):
    param = inspect.signature(cls.__init__).parameters.get(name)
    if param is None or param.default is inspect.Parameter.empty:
        return fallback
    return param.default


def _has_file(folder: str, suffix: str) -> bool:
    """Whether ``folder`` holds a file ending in ``suffix`` (recursively),
    stopping at the first one."""
    for _, _, files in os.walk(folder):
        if any(name.endswith(suffix) for name in files):
            return True
    return False


def seg_dataset_problem(dataset_cfg: Mapping) -> Optional[str]:
    """Why an MMSeg dataset config would load no sample, or ``None``.

    Only local folders are looked at (``backend_args`` set or a URL-like
    path: skipped), and only datasets of MMSeg's ``BaseSegDataset`` family.
    """
    cls = _seg_dataset_class(dataset_cfg.get('type'))
    if cls is None or dataset_cfg.get('backend_args'):
        return None
    data_root = dataset_cfg.get('data_root') or ''
    prefix = dataset_cfg.get('data_prefix') or {}
    img_dir = prefix.get('img_path', '') if isinstance(prefix, Mapping) \
        else ''
    img_dir = osp.join(data_root, img_dir) if img_dir else data_root
    if '://' in img_dir:
        return None
    ann_file = dataset_cfg.get('ann_file') or ''
    if ann_file:
        ann_file = osp.join(data_root, ann_file) if data_root and \
            not osp.isabs(ann_file) else ann_file
        if osp.isfile(ann_file):
            with open(ann_file, encoding='utf-8') as f:
                if not any(line.strip() for line in f):
                    return f'the annotation file {ann_file!r} lists no image'
            return None
    suffix = dataset_cfg.get('img_suffix') or _default(cls, 'img_suffix',
                                                       '.jpg')
    shown = osp.abspath(img_dir or '.')
    if not osp.isdir(img_dir or '.'):
        given = prefix.get('img_path') if isinstance(prefix, Mapping) else None
        return (f'the image folder {shown!r} does not exist (data_root='
                f'{data_root!r}, data_prefix.img_path={given!r})')
    if not _has_file(img_dir or '.', suffix):
        return (f'the image folder {shown!r} holds no image ending in '
                f'{suffix!r}')
    return None


def check_data_folders(cfg: Config, loaders=TRAIN_LOADERS) -> None:
    """Raise a clear error if a dataloader of ``cfg`` would load no sample.

    Args:
        cfg: A run config.
        loaders: The dataloader keys to look at (``None`` ones skipped).

    Raises:
        FileNotFoundError: A dataset's image folder is missing or holds no
            image of its suffix, or its annotation file lists no image.
    """
    problems: List[str] = []
    for key in loaders:
        loader = cfg.get(key)
        if not isinstance(loader, Mapping):
            continue
        for where, dataset in _datasets(loader.get('dataset'),
                                        f'{key}.dataset'):
            problem = seg_dataset_problem(dataset)
            if problem:
                problems.append(f'{where}: {problem}')
    if problems:
        raise FileNotFoundError(
            'no data to load: ' + '; '.join(problems) + '. Check data_root '
            '(relative paths are relative to the working directory '
            f'{os.getcwd()!r}) and that the data set was prepared.')
