# Copyright (c) mmgdkd contributors. All rights reserved.
"""What ``make demo`` reports about its trained segmentors.

Each checkpoint is loaded as a plain MMSeg model (``init_model``): its
parameters are counted, ``inference_model`` is timed on one val image
(median over rounds, models taken in turn) and a few val images are
predicted for a figure; the table goes to ``results.md``/``results.json``
(``tools/demo.py``).
"""
import contextlib
import glob
import io
import json
import os.path as osp
import statistics
import time
from typing import Dict, List, Sequence, Tuple

from .figures import subplots

#: Number of val images in the figure, and timing rounds per model.
FIGURE_IMAGES = 3
TIMING_ROUNDS = 20

def evaluate_extras(runs: List[dict], data_root: str) -> Dict[str, dict]:
    """Load every checkpoint as a plain MMSeg model (``init_model``): count
    parameters, time ``inference_model`` and predict the figure's images.

    Args:
        runs: One dict per model with ``name``, ``checkpoint`` and
            ``eval_config`` (the plain MMSeg config it loads into).
        data_root: The Cityscapes-format tree (val images and labels).

    Returns:
        dict: Per run name ``params_M``, ``ms_per_image`` and ``preds``
        (the figure images' label maps); ``_images`` and ``_labels``.
    """
    import cv2
    import torch
    from mmseg.apis import inference_model, init_model

    val_imgs = sorted(glob.glob(osp.join(data_root, 'leftImg8bit', 'val',
                                         '*', '*_leftImg8bit.png')))
    # Evenly spaced, not picked: the figure shows typical cases.
    step = max(len(val_imgs) // FIGURE_IMAGES, 1)
    figure_imgs = [cv2.imread(p) for p in val_imgs[::step][:FIGURE_IMAGES]]
    models = {}
    for run in runs:
        with contextlib.redirect_stdout(io.StringIO()):  # loading chatter
            models[run['name']] = init_model(run['eval_config'],
                                             run['checkpoint'], 'cpu')
    extras = {name: dict(times=[]) for name in models}
    with torch.no_grad():
        for name, model in models.items():
            # Parameters used at inference (the auxiliary head only trains).
            extras[name]['params_M'] = sum(
                p.numel() for n, p in model.named_parameters()
                if not n.startswith('auxiliary_head')) / 1e6
            extras[name]['preds'] = [
                inference_model(model, img).pred_sem_seg.data[0].numpy()
                for img in figure_imgs]
        # Round-robin, so that a load change on the machine hits all alike.
        for _ in range(TIMING_ROUNDS):
            for name, model in models.items():
                tic = time.perf_counter()
                inference_model(model, figure_imgs[0])
                extras[name]['times'].append(time.perf_counter() - tic)
    for name in extras:
        extras[name]['ms_per_image'] = 1e3 * statistics.median(
            extras[name].pop('times'))
    extras['_images'] = figure_imgs
    extras['_labels'] = [
        cv2.imread(
            p.replace(osp.join('leftImg8bit', 'val'),
                      osp.join('gtFine', 'val')).replace(
                          '_leftImg8bit.png', '_gtFine_labelTrainIds.png'),
            cv2.IMREAD_GRAYSCALE) for p in val_imgs[::step][:FIGURE_IMAGES]
    ]
    return extras


def draw_figure(path: str, extras: dict, runs: List[dict],
                labels: Dict[str, str],
                shown: Sequence[str] = ('teacher', 'student', 'gdkd')) -> None:
    """Val images, ground truth and the predictions of the ``shown`` runs
    (Cityscapes palette, void black)."""
    import numpy as np
    from mmseg.datasets import CityscapesDataset

    palette = np.zeros((256, 3), np.uint8)  # ignore (255) stays black
    palette[:19] = CityscapesDataset.METAINFO['palette']
    shown = [r for r in runs if r['name'] in shown]
    titles = ['image', 'ground truth'] + [
        f'{labels[r["name"]]}\nmIoU {r["mIoU"]:.1f}' for r in shown]
    rows = len(extras['_images'])
    fig, axes = subplots(
        rows, len(titles), figsize=(2.6 * len(titles), 1.5 * rows + 0.5),
        squeeze=False)
    for i in range(rows):
        cells = [extras['_images'][i][..., ::-1], palette[extras['_labels'][i]]
                 ] + [palette[extras[r['name']]['preds'][i]] for r in shown]
        for j, cell in enumerate(cells):
            axes[i, j].imshow(cell, interpolation='nearest')
            axes[i, j].axis('off')
            if i == 0:
                axes[i, j].set_title(titles[j], fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def write_results(out: str, runs: List[dict], meta: dict,
                  labels: Dict[str, str], image_size: Tuple[int, int]) -> str:
    """``results.md`` (the table, returned) and ``results.json`` in ``out``;
    gains are against the run named ``student``."""
    base = next(r for r in runs if r['name'] == 'student')
    lines = [
        f'Synthetic Cityscapes val ({meta["num_val"]} images, '
        f'{image_size[0]}x{image_size[1]}), seed {meta["seed"]}, '
        f'{meta["device"]}, {meta["wall_time_s"]} s in all.' +
        (' --quick: a pipeline check, the numbers mean nothing.'
         if meta['quick'] else ''), '',
        '| model | mIoU | mAcc | Δ mIoU vs student | params (M) | '
        'ms / image |', '|---|---|---|---|---|---|'
    ]
    for run in runs:
        delta = ('' if run['name'] in ('teacher', 'student') else
                 f'{run["mIoU"] - base["mIoU"]:+.2f}')
        lines.append(f'| {labels[run["name"]]} | {run["mIoU"]:.2f} | '
                     f'{run["mAcc"]:.2f} | {delta} | {run["params_M"]:.2f} | '
                     f'{run["ms_per_image"]:.1f} |')
    table = '\n'.join(lines) + '\n'
    with open(osp.join(out, 'results.md'), 'w', encoding='utf-8') as f:
        f.write('# mmgdkd demo results\n\n' + table)
    keys = ('name', 'config', 'checkpoint', 'mIoU', 'mAcc', 'aAcc',
            'params_M', 'ms_per_image', 'train_scalars')
    with open(osp.join(out, 'results.json'), 'w', encoding='utf-8') as f:
        json.dump(dict(meta, runs=[{k: r[k] for k in keys} for r in runs]),
                  f, indent=2)
    return table
