# Copyright (c) mmgdkd contributors. All rights reserved.
"""Writing scenes as a Cityscapes tree (cached, resumable)."""
import json
import multiprocessing
import os
import os.path as osp
from typing import List, Sequence, Tuple

import cv2

from .constants import (CLASS_NAMES, FRAME_ID, GENERATOR_VERSION, META_FILE,
                        VAL_INDEX_OFFSET)
from .scene import render_scene


def _stems(split: str, num: int, cities: Sequence[str]) -> List[tuple]:
    """``(city, stem, render index)`` for every image of a split."""
    offset = 0 if split == 'train' else VAL_INDEX_OFFSET
    out = []
    for i in range(num):
        city = cities[i % len(cities)]
        seq = i // len(cities)
        out.append((city, f'{city}_{seq:06d}_{FRAME_ID:06d}', offset + i))
    return out


def _paths(root: str, split: str, city: str, stem: str) -> Tuple[str, str]:
    return (osp.join(root, 'leftImg8bit', split, city,
                     f'{stem}_leftImg8bit.png'),
            osp.join(root, 'gtFine', split, city,
                     f'{stem}_gtFine_labelTrainIds.png'))


def _all_files(root: str, params: dict) -> List[Tuple[str, str, int]]:
    files = []
    for split in ('train', 'val'):
        for city, stem, index in _stems(split, params[f'num_{split}'],
                                        params['cities']):
            img, seg = _paths(root, split, city, stem)
            files.append((img, seg, index))
    return files


def _remove_tree_files(root: str, params: dict, keep: set) -> None:
    """Delete what an earlier generation wrote (bar ``keep``), nothing else."""
    try:
        files = _all_files(root, params)
    except (KeyError, TypeError, ValueError, ZeroDivisionError):
        return  # unreadable meta: leave the files alone
    dirs = set()
    for img, seg, _ in files:
        for path in (img, seg):
            if path not in keep and osp.isfile(path):
                os.remove(path)
            dirs.add(osp.dirname(path))
    for d in sorted(dirs, key=len, reverse=True):
        # Prune emptied directories, never root or anything holding files.
        while (d.startswith(root + os.sep) and osp.isdir(d)
               and not os.listdir(d)):
            os.rmdir(d)
            d = osp.dirname(d)


def _worker_init() -> None:
    # Parallelism is across processes: OpenCV threads would oversubscribe.
    cv2.setNumThreads(1)


def _write_scene(job: Tuple[str, str, int, int, Tuple[int, int]]) -> None:
    """Render one scene and write its image and label map."""
    img_path, seg_path, index, seed, size = job
    img, lab = render_scene(index, seed, size)
    for path in (img_path, seg_path):
        os.makedirs(osp.dirname(path), exist_ok=True)
    if not (cv2.imwrite(img_path, img[..., ::-1])
            and cv2.imwrite(seg_path, lab)):
        raise OSError(f'could not write {img_path}')


def _write_meta(path: str, meta: dict) -> None:
    tmp = path + '.tmp'
    with open(tmp, 'w') as f:
        json.dump(meta, f, indent=2, sort_keys=True)
    os.replace(tmp, path)


def generate_cityscapes(root: str,
                        num_train: int = 8,
                        num_val: int = 4,
                        size: tuple = (128, 256),
                        seed: int = 0,
                        cities: tuple = ('synth', ),
                        progress: bool = False,
                        workers: int = 1) -> dict:
    """Write a synthetic data set in the Cityscapes layout under ``root``.

    Files (``<stem>`` is ``<city>_<seq:06d>_000019``)::

        root/leftImg8bit/{train,val}/<city>/<stem>_leftImg8bit.png
        root/gtFine/{train,val}/<city>/<stem>_gtFine_labelTrainIds.png
        root/synthetic_meta.json

    Images are RGB ``uint8``; labels are single-channel ``uint8`` train ids
    (0..18, 255 = void). Image ``i`` of a split is drawn from
    ``np.random.default_rng(seed * 100003 + index)`` with ``index = i`` for
    train and ``VAL_INDEX_OFFSET + i`` for val, so a tree is byte-identical
    across runs and val does not change with ``num_train``.

    If ``root`` already holds a complete tree generated with the same
    parameters (and generator version), it is reused without writing
    anything. A tree made with other parameters is replaced; when only the
    image counts differ, the images both trees share are kept as they are.
    A ``root`` that has ``leftImg8bit`` images but no ``synthetic_meta.json``
    (e.g. the real Cityscapes) is never touched.

    Args:
        root (str): Data root.
        num_train (int): Number of training images. Defaults to 8.
        num_val (int): Number of validation images. Defaults to 4.
        size (tuple): ``(height, width)``. Defaults to (128, 256).
        seed (int): Data set seed. Defaults to 0.
        cities (tuple): City names; images are dealt round-robin.
            Defaults to ``('synth', )``.
        progress (bool): Print a progress bar. Defaults to False.
        workers (int): Processes rendering in parallel. Every image depends
            on its index alone, so the files are the same for any number.
            Defaults to 1.

    Returns:
        dict: ``root``, ``img_dir``, ``ann_dir``, ``meta_file``, ``size``,
        ``seed``, ``cities``, ``num_train``, ``num_val``, ``num_files``
        (images + labels in the tree), ``reused`` (whether the existing tree
        was kept untouched) and ``num_written`` (images rendered now).
    """
    if len(size) != 2 or min(int(s) for s in size) < 16:
        raise ValueError(f'size must be (height, width) >= 16, got {size}')
    if num_train < 0 or num_val < 0:
        raise ValueError('num_train and num_val must be >= 0')
    if isinstance(cities, str):
        cities = (cities, )
    if not cities or any(not c or os.sep in c or '_' in c for c in cities):
        # Cityscapes stems are split on '_' by the official scripts.
        raise ValueError(f'cities must be non-empty names without "_" or '
                         f'path separators, got {cities}')
    root = osp.abspath(osp.expanduser(root))
    params = dict(
        version=GENERATOR_VERSION,
        num_train=int(num_train),
        num_val=int(num_val),
        size=[int(size[0]), int(size[1])],
        seed=int(seed),
        cities=list(cities))
    meta_path = osp.join(root, META_FILE)
    files = _all_files(root, params)
    info = dict(
        root=root,
        img_dir=osp.join(root, 'leftImg8bit'),
        ann_dir=osp.join(root, 'gtFine'),
        meta_file=meta_path,
        size=tuple(params['size']),
        seed=params['seed'],
        cities=tuple(cities),
        num_train=params['num_train'],
        num_val=params['num_val'],
        num_files=2 * len(files))

    old = None
    if osp.isfile(meta_path):
        try:
            with open(meta_path) as f:
                old = json.load(f)
        except (OSError, ValueError):
            old = {}
    old_params = old.get('params') if isinstance(old, dict) else None
    complete = bool(old and old.get('complete')) and isinstance(
        old_params, dict)
    if (complete and old_params == params
            and all(osp.isfile(a) and osp.isfile(b) for a, b, _ in files)):
        return dict(info, reused=True, num_written=0)

    keep = set()
    if old is None:
        img_root = osp.join(root, 'leftImg8bit')
        if osp.isdir(img_root) and any(
                n.endswith('.png') for _, _, names in os.walk(img_root)
                for n in names):
            raise FileExistsError(
                f'{root} holds leftImg8bit images but no {META_FILE}; '
                'refusing to write synthetic data into what looks like a '
                'real data set. Use an empty directory.')
    elif isinstance(old_params, dict):
        counts = ('num_train', 'num_val')
        if complete and all(
                old_params.get(k) == v
                for k, v in params.items() if k not in counts):
            # Only the counts changed: an image depends on its index alone,
            # so the files both trees share are already right.
            keep = {p for a, b, _ in files for p in (a, b) if osp.isfile(p)}
        _remove_tree_files(root, old_params, keep)

    os.makedirs(root, exist_ok=True)
    meta = dict(
        generator='mmgdkd.datasets.synthetic_cityscapes',
        params=params,
        counts=dict(train=params['num_train'], val=params['num_val']),
        class_names=list(CLASS_NAMES),
        complete=False)
    # Written first: an interrupted run is recognised (and cleaned) later.
    _write_meta(meta_path, meta)

    todo = [f for f in files if not (f[0] in keep and f[1] in keep)]
    bar = None
    if progress and todo:
        from mmengine.utils import ProgressBar
        bar = ProgressBar(len(todo))
    jobs = [(img_path, seg_path, index, params['seed'],
             tuple(params['size'])) for img_path, seg_path, index in todo]
    if workers > 1 and len(jobs) > 1:
        with multiprocessing.get_context('fork').Pool(
                min(workers, len(jobs)), initializer=_worker_init) as pool:
            for _ in pool.imap_unordered(_write_scene, jobs, chunksize=4):
                if bar is not None:
                    bar.update()
    else:
        for job in jobs:
            _write_scene(job)
            if bar is not None:
                bar.update()
    if bar is not None:
        print()

    meta['complete'] = True
    _write_meta(meta_path, meta)
    return dict(info, reused=False, num_written=len(todo))
