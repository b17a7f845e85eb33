# Copyright (c) mmgdkd contributors. All rights reserved.
"""tools/analysis/teacher_distribution.py and mmgdkd.analysis (its logic).

The statistics are checked against values computed by hand from teacher
distributions chosen so that every number is known: three probability
vectors over C = 5 classes (logits = log p), with known top-1, cumulative
top-k mass and adaptive k (ratio rule, r = 2, T = 1):

====  ===================================  ======================  ==
name  p                                    top-k mass k=1..4       k
====  ===================================  ======================  ==
A     .62 .23 .08 .04 .03  (argmax 0)      .62 .85 .93 .97         2
B     .34 .31 .33 .01 .01  (argmax 0)      .34 .67 .98 .99         3
C     .03 .03 .02 .01 .91  (argmax 4)      .91 .94 .97 .99         1
====  ===================================  ======================  ==

Adaptive k, A ascending .03 .04 .08 .23 .62: ratios .04/.035, .08/.05,
.23/.095 = 2.4 >= 2 at j = 3, k = 5 - 3 = 2. B: .01 .01 .31 .33 .34, .31 /
(.33/3) = 2.8 at j = 2, k = 3. C: .01 .02 .03 .03 .91: the jump is the
last, j = 4, k = 1.
"""
import json
import os.path as osp
import subprocess

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope
from mmengine.structures import PixelData

from helpers import (PSPNET_R18, REPO_ROOT, build_segmentor,
                     tiny_seg_overrides, tiny_segmentor, write_config)
from mmgdkd.analysis import (RowReservoir, distribution_plots,
                             distribution_stats, format_summary, seg_rows,
                             smallest_k_reaching, teacher_rows)

TOOL = osp.join(REPO_ROOT, 'tools', 'analysis', 'teacher_distribution.py')
GDKD_CONFIG = osp.join(REPO_ROOT, 'configs', 'gdkd',
                       'pspnet_r101_r18_cityscapes.py')
CIFAR_GDKD_CONFIG = osp.join(REPO_ROOT, 'configs', 'gdkd',
                             'resnet32x4_resnet8x4_cifar100.py')
PNG_SIGNATURE = b'\x89PNG\r\n\x1a\n'

A = [0.62, 0.23, 0.08, 0.04, 0.03]
B = [0.34, 0.31, 0.33, 0.01, 0.01]
C = [0.03, 0.03, 0.02, 0.01, 0.91]
CUM = {'A': [.62, .85, .93, .97, 1.], 'B': [.34, .67, .98, .99, 1.],
       'C': [.91, .94, .97, .99, 1.]}
NAMES = ['c0', 'c1', 'c2', 'c3', 'c4']


def logits_of(*dists):
    return torch.tensor(dists, dtype=torch.float64).log().float()


def approx(values, rel=1e-5, abs=1e-6):
    return pytest.approx(values, rel=rel, abs=abs)


# ---------------------------------------------------------------------------
# The statistics module on hand-made logits
# ---------------------------------------------------------------------------
def test_stats_hand_computed():
    # rows: A (label 0, right), A (label 1, wrong), B (label 2, wrong:
    # argmax 0), C (label 4, right)
    logits = logits_of(A, A, B, C)
    labels = torch.tensor([0, 1, 2, 4])
    stats = distribution_stats(logits, labels, num_bins=10,
                               class_names=NAMES)
    assert stats['rows'] == stats['rows_seen'] == 4
    assert stats['num_classes'] == 5
    # top-1 .62 .62 .34 .91 in bins of 0.1
    assert stats['top1']['counts'] == [0, 0, 0, 1, 0, 0, 2, 0, 0, 1]
    assert stats['top1']['bin_edges'] == approx(np.linspace(0, 1, 11))
    assert stats['top1']['mean'] == approx((.62 * 2 + .34 + .91) / 4)
    assert stats['top1']['fraction_above'] == approx(
        {'0.5': .75, '0.9': .25, '0.99': 0.})
    cum = np.array([CUM['A'], CUM['A'], CUM['B'], CUM['C']])
    mass = stats['topk_mass']
    assert mass['k'] == [1, 2, 3, 4, 5]
    assert mass['mean'] == approx([.6225, .8275, .9525, .98, 1.])
    for q in (10, 25, 50, 75, 90):
        assert mass[f'p{q}'] == approx(np.percentile(cum, q, axis=0))
    assert mass['p50'][0] == approx(.62)
    # adaptive k: C -> 1, A -> 2 (twice), B -> 3; capped at C-1 = 4
    ak = stats['adaptive_k']
    assert ak['k'] == [1, 2, 3, 4]
    assert ak['counts'] == [1, 2, 1, 0]
    assert ak['mean'] == approx(2.0)
    # mean mass .6225 .8275 .9525 .98 1: 0.95 is reached at k = 3
    assert stats['suggested_k']['k'] == 3
    assert stats['suggested_k']['mean_mass'] == approx(.9525)
    assert '0.95' in stats['suggested_k']['rule']
    assert stats['k_at_mass'] == {'0.8': 2, '0.9': 3, '0.95': 3, '0.99': 4}
    assert stats['k_ref']['k'] == 3
    assert stats['k_ref']['mean_other_mass'] == approx(.0475)
    assert stats['accuracy'] == approx(0.5)
    per = {p['name']: p for p in stats['per_class']}
    assert per['c0'] == approx(dict(
        index=0, name='c0', rows=1, accuracy=1.0, mean_top1=.62,
        mean_topk_mass=.93, k_mass=4, k_ratio=2))
    assert per['c1']['accuracy'] == 0.0 and per['c1']['k_mass'] == 4
    assert per['c2'] == approx(dict(
        index=2, name='c2', rows=1, accuracy=0.0, mean_top1=.34,
        mean_topk_mass=.98, k_mass=3, k_ratio=3))
    assert per['c3']['rows'] == 0 and per['c3']['mean_top1'] is None
    assert per['c4'] == approx(dict(
        index=4, name='c4', rows=1, accuracy=1.0, mean_top1=.91,
        mean_topk_mass=.97, k_mass=3, k_ratio=1))
    json.dumps(stats)  # JSON-ready
    summary = format_summary(stats)
    assert 'suggested k = 3' in summary and 'accuracy' in summary


def test_stats_temperature_and_unknown_labels():
    logits = logits_of(A, B, C)
    stats = distribution_stats(logits, torch.tensor([0, -1, 9]),
                               temperature=2.0, k_ref=2,
                               k_ref_source='--k')
    probs = torch.softmax(logits.double() / 2.0, 1)
    cum = probs.sort(1, descending=True).values.cumsum(1)
    assert stats['temperature'] == 2.0
    assert stats['topk_mass']['mean'] == approx(cum.mean(0).tolist())
    assert stats['top1']['mean'] == approx(float(cum[:, 0].mean()))
    # labels outside [0, C) count for the distribution only
    assert stats['rows'] == 3 and stats['rows_labelled'] == 1
    assert [p['rows'] for p in stats['per_class']] == [1, 0, 0, 0, 0]
    assert stats['k_ref'] == approx(dict(
        k=2, source='--k', mean_top_mass=float(cum[:, 1].mean()),
        mean_other_mass=1 - float(cum[:, 1].mean())))
    assert stats['per_class'][0]['mean_topk_mass'] == approx(
        float(cum[0, 1]))


def test_per_class_k_ratio_uses_the_mean_prediction():
    # class 0 has rows A and C: mean prediction .325 .13 .05 .025 .47,
    # ascending .025 .05 .13 .325 .47: .13/.0683 = 1.9, .325/.1325 = 2.45
    # at j = 3, so k = 2 (not a mean of the per-row k 2 and 1)
    stats = distribution_stats(logits_of(A, C), torch.tensor([0, 0]),
                               mass_threshold=0.9)
    assert stats['per_class'][0]['k_ratio'] == 2
    # mean mass of the class .765 .895 .95: 0.9 is reached at k = 3
    assert stats['per_class'][0]['k_mass'] == 3


def test_stats_validation():
    with pytest.raises(ValueError, match='no rows'):
        distribution_stats(torch.zeros(0, 5))
    with pytest.raises(ValueError, match='max_k'):
        distribution_stats(logits_of(A), max_k=5)
    with pytest.raises(ValueError, match='k_ref'):
        distribution_stats(logits_of(A), k_ref=5)


def test_smallest_k_reaching():
    assert smallest_k_reaching([.5, .8, .96, 1.], .95) == 3
    assert smallest_k_reaching([.5, .8, .96, 1.], .5) == 1
    assert smallest_k_reaching([.5, .8, .9, .9999999], 1.0) == 4


def test_seg_rows_resizes_labels_and_drops_ignored():
    logits = torch.arange(2 * 3 * 2 * 2, dtype=torch.float32).view(2, 3, 2, 2)
    blocks = torch.tensor([[[0, 1], [255, 2]], [[255, 255], [1, 0]]])
    labels = blocks.repeat_interleave(4, 1).repeat_interleave(4, 2)  # 8x8
    rows, lab = seg_rows(logits, labels, ignore_index=255)
    assert lab.tolist() == [0, 1, 2, 1, 0]
    expected = logits.permute(0, 2, 3, 1).reshape(-1, 3)[[0, 1, 3, 6, 7]]
    assert torch.equal(rows, expected)
    rows, lab = seg_rows(logits, labels[:, None], ignore_index=None)
    assert rows.shape == (8, 3)


def test_reservoir_is_a_seeded_uniform_sample():
    def run(seed, batch):
        res = RowReservoir(1000, seed=seed)
        ids = torch.arange(20000, dtype=torch.float32)
        for start in range(0, ids.numel(), batch):
            part = ids[start:start + batch]
            res.add(part[:, None].repeat(1, 3), part.long())
        return res

    res = run(0, 777)
    assert len(res) == 1000 and res.seen == 20000
    ids = res.labels
    assert ids.unique().numel() == 1000  # without replacement
    assert torch.equal(res.logits[:, 0].long(), ids)  # rows keep labels
    # uniform: the mean id is near 10000 (sd of the mean ~ 183)
    assert abs(float(ids.float().mean()) - 10000) < 800
    assert (ids < 5000).sum() > 180 and (ids >= 15000).sum() > 180
    # seeded; the batching does not matter (keys are drawn per row)
    assert torch.equal(run(0, 777).labels, ids)
    assert torch.equal(run(0, 5000).labels.sort().values, ids.sort().values)
    assert not torch.equal(run(1, 777).labels, ids)
    # below capacity every row is kept, in order
    small = RowReservoir(10)
    small.add(torch.zeros(4, 2), torch.arange(4))
    small.add(torch.zeros(3, 2))
    assert small.labels.tolist() == [0, 1, 2, 3, -1, -1, -1]


# ---------------------------------------------------------------------------
# The tool's collection on constructed teachers with fixed logits
# ---------------------------------------------------------------------------
def fixed_logit_segmentor(logit_map):
    """A tiny MMSeg EncoderDecoder whose decode head returns ``logit_map``
    (1, C, h, w) for every image."""
    model = build_segmentor().eval()
    model.extract_feat = lambda inputs: [inputs]
    model.decode_head.forward = lambda feats: logit_map.expand(
        feats[0].shape[0], -1, -1, -1)
    return model


def seg_batch(label_blocks, size=(16, 24)):
    """One image per 2x3 block map of labels (8x8 pixel blocks)."""
    from mmseg.structures import SegDataSample
    inputs, samples = [], []
    for blocks in label_blocks:
        gt = torch.tensor(blocks).repeat_interleave(8, 0).repeat_interleave(
            8, 1)
        assert tuple(gt.shape) == size
        sample = SegDataSample(metainfo=dict(img_shape=size, ori_shape=size))
        sample.gt_sem_seg = PixelData(data=gt[None])
        samples.append(sample)
        inputs.append(torch.zeros(3, *size, dtype=torch.uint8))
    return dict(inputs=inputs, data_samples=samples)


def test_tool_on_fixed_logit_segmentor(tmp_path):
    from mmseg.models import SegDataPreProcessor
    # logit map 2x3: [[A, B, C], [A, C, C]]
    grid = logits_of(A, B, C, A, C, C).t().reshape(1, 5, 2, 3)
    model = fixed_logit_segmentor(grid)
    teacher = teacher_rows.Teacher(model, SegDataPreProcessor(), 'mmseg',
                                   'seg', 'none.pth', 'stub', 255)
    # image 1: A/0 B/2 C/4 A/1 C/ignored C/4; image 2: only the last pixel
    # (C, label 0) is valid
    loader = [seg_batch([[[0, 2, 4], [1, 255, 4]]]),
              seg_batch([[[255, 255, 255], [255, 255, 0]]])]
    reservoir = RowReservoir(100)
    samples, num_classes = teacher_rows.collect_rows(
        teacher, loader, reservoir, progress=False)
    assert (samples, num_classes, reservoir.seen) == (2, 5, 6)
    stats = distribution_stats(reservoir.logits, reservoir.labels,
                               mass_threshold=0.9, num_bins=10,
                               class_names=NAMES, rows_seen=reservoir.seen)
    distribution_plots.write_outputs(stats, str(tmp_path))
    with open(tmp_path / 'stats.json') as f:
        saved = json.load(f)
    # rows A0 B2 C4 A1 C4 C0: top-1 .62 .34 .91 .62 .91 .91
    assert saved['rows'] == 6
    assert saved['top1']['counts'] == [0, 0, 0, 1, 0, 0, 2, 0, 0, 3]
    assert saved['topk_mass']['mean'] == approx(
        [4.31 / 6, 5.19 / 6, 5.75 / 6, 5.9 / 6, 1.])
    assert saved['adaptive_k']['counts'] == [3, 2, 1, 0]
    assert saved['adaptive_k']['mean'] == approx(10 / 6)
    assert saved['suggested_k']['k'] == 3  # .865 < 0.9 <= .958
    assert saved['accuracy'] == approx(0.5)
    per = saved['per_class']
    assert [p['rows'] for p in per] == [2, 1, 1, 0, 2]
    assert per[0] == approx(dict(
        index=0, name='c0', rows=2, accuracy=0.5, mean_top1=.765,
        mean_topk_mass=.95, k_mass=3, k_ratio=2))
    assert per[1] == approx(dict(
        index=1, name='c1', rows=1, accuracy=0.0, mean_top1=.62,
        mean_topk_mass=.93, k_mass=3, k_ratio=2))
    assert per[2]['k_ratio'] == 3 and per[2]['mean_topk_mass'] == approx(.98)
    assert per[4] == approx(dict(
        index=4, name='c4', rows=2, accuracy=1.0, mean_top1=.91,
        mean_topk_mass=.97, k_mass=1, k_ratio=1))  # .91 >= 0.9 at k = 1
    for name in distribution_plots.FIGURES.values():
        with open(tmp_path / name, 'rb') as f:
            assert f.read(8) == PNG_SIGNATURE
    assert saved['figures'] == distribution_plots.FIGURES

    # --max-samples stops after the first image; a 3-row reservoir keeps 3
    reservoir = RowReservoir(3, seed=0)
    samples, _ = teacher_rows.collect_rows(
        teacher, loader, reservoir, max_samples=1, progress=False)
    assert (samples, reservoir.seen, len(reservoir)) == (1, 5, 3)


def test_seg_labels_follow_img_shape_and_padding():
    from mmseg.structures import SegDataSample
    sample = SegDataSample(metainfo=dict(img_shape=(4, 6)))
    # loaded after Resize: the original (2, 3) map is resized to img_shape
    sample.gt_sem_seg = PixelData(data=torch.tensor([[[0, 1, 2],
                                                      [3, 4, 5]]]))
    labels = teacher_rows.seg_labels([sample], (6, 8), ignore_index=255)
    assert labels.shape == (1, 6, 8)
    assert labels[0, :4, :6].tolist() == torch.tensor(
        [[0, 1, 2], [3, 4, 5]]).repeat_interleave(2, 0).repeat_interleave(
            2, 1).tolist()
    assert (labels[0, 4:] == 255).all() and (labels[0, :, 6:] == 255).all()


def test_tool_on_fixed_logit_classifier():
    from mmpretrain.models import ClsDataPreprocessor
    from mmpretrain.registry import MODELS
    from mmpretrain.structures import DataSample

    from mmgdkd.models.distillers.utils import load_model_cfg
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        model = MODELS.build(load_model_cfg(osp.join(
            REPO_ROOT, 'configs', '_base_', 'models',
            'cifar_resnet8x4.py'))).eval()
    table = logits_of(A, B, C)
    model.extract_feat = lambda inputs: inputs
    model.head.forward = lambda feats: table[:feats.shape[0]]
    teacher = teacher_rows.Teacher(model, ClsDataPreprocessor(),
                                   'mmpretrain', 'cls', 'none.pth', 'stub',
                                   None)
    batch = dict(inputs=[torch.zeros(3, 8, 8, dtype=torch.uint8)] * 3,
                 data_samples=[DataSample().set_gt_label(i)
                               for i in (0, 2, 4)])
    reservoir = RowReservoir(10)
    teacher_rows.collect_rows(teacher, [batch], reservoir, progress=False)
    assert reservoir.labels.tolist() == [0, 2, 4]
    stats = distribution_stats(reservoir.logits, reservoir.labels)
    assert stats['accuracy'] == approx(2 / 3)  # B (label 2) is wrong
    assert stats['adaptive_k']['counts'] == [1, 1, 1, 0]


# ---------------------------------------------------------------------------
# Building the teacher: errors and the classification path
# ---------------------------------------------------------------------------
def test_build_teacher_errors(tmp_path, cityscapes_root):
    distill = write_config(
        str(tmp_path / 'gdkd_no_ckpt.py'), GDKD_CONFIG,
        model=dict(student=tiny_segmentor(),
                   teacher=dict(cfg_path=PSPNET_R18, **tiny_segmentor()),
                   teacher_ckpt=None),
        **tiny_seg_overrides(cityscapes_root))
    with pytest.raises(ValueError,
                       match=r'teacher_ckpt is None.*--checkpoint'):
        teacher_rows.build_teacher(Config.fromfile(distill), distill)
    missing = str(tmp_path / 'nowhere.pth')
    with pytest.raises(FileNotFoundError, match='nowhere.pth'):
        teacher_rows.build_teacher(Config.fromfile(distill), distill, missing)
    plain = write_config(str(tmp_path / 'plain.py'), PSPNET_R18,
                         model=tiny_segmentor())
    with pytest.raises(ValueError, match=r'plain\.py.*plain model config.*'
                       r'--checkpoint'):
        teacher_rows.build_teacher(Config.fromfile(plain), plain)
    cfg = Config.fromfile(distill)
    cfg.test_dataloader = None
    with pytest.raises(ValueError, match='no test_dataloader'):
        teacher_rows.build_loader(cfg, 'test', 0, False)


def test_build_teacher_of_a_cls_distiller(tmp_path):
    from mmpretrain.registry import MODELS

    from mmgdkd.models.distillers.utils import load_model_cfg
    cfg = Config.fromfile(CIFAR_GDKD_CONFIG)
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        teacher = MODELS.build(load_model_cfg(cfg.model.teacher))
    ckpt = str(tmp_path / 'resnet32x4.pth')
    torch.save({'state_dict': teacher.state_dict()}, ckpt)
    built = teacher_rows.build_teacher(cfg, CIFAR_GDKD_CONFIG, ckpt)
    assert (built.scope, built.task, built.checkpoint) == ('mmpretrain',
                                                           'cls', ckpt)
    assert type(built.data_preprocessor).__name__ == 'ClsDataPreprocessor'
    assert not built.model.training
    batch = built.data_preprocessor(
        dict(inputs=[torch.zeros(3, 32, 32, dtype=torch.uint8)]), False)
    with torch.no_grad():
        logits = teacher_rows.teacher_logits(built.model, 'cls',
                                             batch['inputs'])
    assert logits.shape == (1, 100)
    assert teacher_rows.distill_loss_settings(cfg) == (4.0, 5, 'loss_gdkd')


# ---------------------------------------------------------------------------
# End to end on the tiny Cityscapes fixture
# ---------------------------------------------------------------------------
@pytest.mark.slow
def test_tool_end_to_end(tmp_path, cityscapes_root, python_env, python_exe):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    torch.manual_seed(0)
    ckpt = str(tmp_path / 'teacher.pth')
    torch.save({'state_dict': build_segmentor().state_dict(), 'meta': {}},
               ckpt)
    config = write_config(
        str(tmp_path / 'gdkd_tiny.py'), GDKD_CONFIG,
        model=dict(student=tiny_segmentor(),
                   teacher=dict(cfg_path=PSPNET_R18, **tiny_segmentor()),
                   teacher_ckpt=None),
        **tiny_seg_overrides(cityscapes_root))
    out = tmp_path / 'out'
    proc = subprocess.run(
        [python_exe, TOOL, config, '--checkpoint', ckpt, '--out', str(out),
         '--max-rows', '100', '--ratio', '1.5'],
        cwd=REPO_ROOT, env=python_env, capture_output=True, text=True,
        timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert 'suggested k =' in proc.stdout
    assert 'Loaded teacher weights from' in proc.stdout + proc.stderr
    with open(out / 'stats.json') as f:
        stats = json.load(f)
    for key in ('rows', 'rows_seen', 'temperature', 'top1', 'topk_mass',
                'adaptive_k', 'suggested_k', 'k_at_mass', 'k_ref',
                'per_class', 'accuracy', 'meta', 'figures'):
        assert key in stats, key
    # 2 val images of 64x128, logits at stride 8: 2 * 8 * 16 pixels, minus
    # the ignored ones; 100 kept
    assert stats['rows'] == 100
    assert 100 < stats['rows_seen'] <= 256
    assert stats['num_classes'] == 19
    assert stats['class_names'][:2] == ['road', 'sidewalk']
    assert sum(p['rows'] for p in stats['per_class']) == 100
    assert sum(stats['top1']['counts']) == 100
    assert sum(stats['adaptive_k']['counts']) == 100
    for key in ('mean', 'p10', 'p25', 'p50', 'p75', 'p90'):
        assert len(stats['topk_mass'][key]) == 19
    # T and k from the config's GDKD loss; --ratio passed through
    assert stats['temperature'] == 1.0
    assert stats['meta']['temperature_source'].endswith(
        'loss_gdkd.temperature')
    assert stats['k_ref']['k'] == 3
    assert stats['adaptive_k']['ratio'] == 1.5
    assert stats['meta']['split'] == 'val' and stats['meta']['samples'] == 2
    for name in stats['figures'].values():
        path = out / name
        with open(path, 'rb') as f:
            assert f.read(8) == PNG_SIGNATURE
        image = plt.imread(str(path))
        assert image.ndim == 3 and min(image.shape[:2]) > 200


def test_build_teacher_of_an_ensemble_picks_one(tmp_path):
    from mmgdkd.analysis.teacher_rows import build_teacher, select_teacher
    config = osp.join(REPO_ROOT, 'configs', 'gdkd',
                      'resnet50-resnet34_resnet18_in1k.py')
    cfg = Config.fromfile(config)
    with pytest.raises(ValueError, match=r'ensemble of 2 teachers: choose '
                       r'one with --teacher-index 1\.\.2 \(got None\)'):
        build_teacher(cfg, config)
    spec, ckpt = select_teacher(cfg, config, 2)
    assert spec.cfg_path == 'mmpretrain::resnet/resnet34_8xb32_in1k.py'
    assert ckpt == cfg.model.teacher_ckpt[1]
    with pytest.raises(ValueError, match=r'\(got 3\)'):
        select_teacher(cfg, config, 3)
