# Copyright (c) mmgdkd contributors. All rights reserved.
"""tools/analysis/plot_distill_log.py on synthetic mmengine scalar logs."""
import importlib.util
import json
import os
import os.path as osp
import subprocess

import numpy as np
import pytest

from helpers import REPO_ROOT
from mmgdkd.analysis import distill_log

TOOL = osp.join(REPO_ROOT, 'tools', 'analysis', 'plot_distill_log.py')
PNG_SIGNATURE = b'\x89PNG\r\n\x1a\n'
PARTS = ('high', 'low_top', 'low_other')


def load_tool():
    spec = importlib.util.spec_from_file_location('plot_distill_log', TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope='module')
def tool():
    return load_tool()


def write_log(run_dir, timestamp, records):
    path = osp.join(str(run_dir), timestamp, 'vis_data', 'scalars.json')
    os.makedirs(osp.dirname(path), exist_ok=True)
    with open(path, 'w') as f:
        for record in records:
            f.write(json.dumps(record) + '\n')
    return path


def gdkd_records(iters, offset=0.0, val_every=3):
    """A SegDistiller GDKD run as tools/train.py logs it."""
    records = []
    for it in iters:
        rec = {'lr': 0.01, 'data_time': 0.01,
               'loss': 2.0 / it + offset,
               'student.decode.loss_ce': 1.0 / it + offset,
               'student.decode.acc_seg': 50.0,
               'student.aux.loss_ce': 0.4 / it + offset}
        for tap, w in (('decode', 1.0), ('aux', 0.4)):
            rec[f'distill.{tap}.loss_gdkd'] = w * 0.5 / it
            for j, part in enumerate(PARTS):
                rec[f'distill.{tap}.gdkd_{part}'] = (j + 1) * 0.1 / it
        rec.update({'distill.warmup_factor': min(it / 4, 1.0), 'time': 0.5,
                    'iter': it, 'memory': 100, 'step': it})
        records.append(rec)
        if it % val_every == 0:
            records.append({'aAcc': 80.0, 'mIoU': 10.0 * it + offset,
                            'mAcc': 20.0, 'data_time': 0.01, 'time': 0.1,
                            'step': it})
    return records


def plain_seg_records(iters):
    """A plain MMSeg run (no distillation)."""
    records = []
    for it in iters:
        records.append({'lr': 0.01, 'data_time': 0.01, 'loss': 3.0 / it,
                        'decode.loss_ce': 2.0 / it, 'decode.acc_seg': 40.0,
                        'aux.loss_ce': 1.0 / it, 'aux.acc_seg': 40.0,
                        'time': 0.3, 'iter': it, 'memory': 50, 'step': it})
        if it % 3 == 0:
            records.append({'aAcc': 70.0, 'mIoU': 5.0 * it, 'mAcc': 9.0,
                            'data_time': 0.0, 'time': 0.1, 'step': it})
    return records


def panels_by_title(panels):
    return {p.title: p for p in panels}


def assert_png(path):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    with open(path, 'rb') as f:
        assert f.read(8) == PNG_SIGNATURE
    image = plt.imread(path)
    assert image.ndim == 3 and min(image.shape[:2]) > 200


def test_one_gdkd_run(tmp_path, tool):
    run = tmp_path / 'gdkd'
    write_log(run, '20240101_000000', gdkd_records(range(1, 7)))
    out = tool.main([str(run)])
    assert out == osp.join(str(run), 'distill_log.png')
    assert_png(out)
    log = distill_log.load_run(str(run))
    assert log.label == 'gdkd' and log.val_unit == 'iteration'
    panels = panels_by_title(distill_log.auto_panels([log]))
    assert list(panels) == [
        'student task loss: decode.loss_ce', 'student task loss: aux.loss_ce',
        'total loss (task + distillation)', 'distillation loss (decode head)',
        'distillation loss (aux head)', 'GDKD components (decode head)',
        'GDKD components (aux head)', 'distillation warm-up factor',
        'validation mIoU'
    ]
    parts = panels['GDKD components (decode head)']
    assert [line.name for line in parts.lines] == list(PARTS)
    for j, line in enumerate(parts.lines):
        assert line.x.tolist() == [1, 2, 3, 4, 5, 6]
        assert line.y == pytest.approx((j + 1) * 0.1 / np.arange(1, 7))
    val = panels['validation mIoU'].lines[0]
    assert val.x.tolist() == [3, 6] and val.y.tolist() == [30.0, 60.0]
    assert panels['validation mIoU'].xlabel == 'iteration'
    task = panels['student task loss: decode.loss_ce'].lines[0]
    assert task.y == pytest.approx(1.0 / np.arange(1, 7))


def test_several_runs_with_a_plain_run(tmp_path, tool, capsys):
    gdkd, kd, plain = tmp_path / 'gdkd', tmp_path / 'kd', tmp_path / 'base'
    write_log(gdkd, '20240101_000000', gdkd_records(range(1, 7)))
    kd_records = gdkd_records(range(1, 7), offset=0.5)
    for rec in kd_records:  # a KD run: one loss, no components
        for key in [k for k in rec if 'gdkd' in k]:
            value = rec.pop(key)
            if key.endswith('loss_gdkd'):
                rec[key.replace('gdkd', 'kd')] = value
    write_log(kd, '20240101_000000', kd_records)
    write_log(plain, '20240101_000000', plain_seg_records(range(1, 7)))
    out = str(tmp_path / 'compare' / 'all.png')
    tool.main([str(gdkd), str(kd), str(plain), '--labels', 'GDKD', 'KD',
               'baseline', '--out', out, '--smooth', '2'])
    assert_png(out)
    assert 'baseline: 1 log file(s), iterations 1-6' in capsys.readouterr(
    ).out
    runs = [distill_log.load_run(str(d), label) for d, label in
            ((gdkd, 'GDKD'), (kd, 'KD'), (plain, 'baseline'))]
    panels = panels_by_title(distill_log.auto_panels(runs))
    # the student's task loss of distilled and plain runs share a panel
    task = panels['student task loss: decode.loss_ce']
    assert [line.run for line in task.lines] == [0, 1, 2]
    assert task.lines[2].y == pytest.approx(2.0 / np.arange(1, 7))
    distill = panels['distillation loss (decode head)']
    assert [(line.run, line.name) for line in distill.lines] == [
        (0, 'loss_gdkd'), (1, 'loss_kd')]
    assert {line.run for line in panels[
        'GDKD components (decode head)'].lines} == {0}
    assert [line.run for line in panels['validation mIoU'].lines] == [0, 1, 2]
    # the total loss is shown for distillation runs only
    assert [line.run for line in panels[
        'total loss (task + distillation)'].lines] == [0, 1]
    # --smooth: moving average over the logged points
    smoothed = distill_log.auto_panels(runs, smooth=2)
    y = panels_by_title(smoothed)['student task loss: decode.loss_ce'].lines[
        2].y
    raw = 2.0 / np.arange(1, 7)
    assert y == pytest.approx(np.r_[raw[0], (raw[1:] + raw[:-1]) / 2])


def test_plain_mmseg_run(tmp_path, tool):
    run = tmp_path / 'pspnet'
    write_log(run, '20240101_000000', plain_seg_records(range(1, 7)))
    out = tool.main([str(run), '--out', str(tmp_path / 'plain.png')])
    assert_png(out)
    panels = distill_log.auto_panels([distill_log.load_run(str(run))])
    assert [p.title for p in panels] == [
        'student task loss: decode.loss_ce', 'student task loss: aux.loss_ce',
        'validation mIoU'
    ]


def test_resumed_run_merges_timestamp_dirs(tmp_path, tool):
    run = tmp_path / 'resumed'
    # first session logs iterations 1-4 (checkpoint at 3, then stopped),
    # the resumed session re-logs 4 and goes on to 6
    write_log(run, '20240101_000000', gdkd_records(range(1, 5)))
    write_log(run, '20240102_000000', gdkd_records(range(4, 7), offset=1.0))
    log = distill_log.load_run(str(run))
    assert len(log.files) == 2
    assert [it for it, _ in log.train] == [1, 2, 3, 4, 5, 6]
    by_iter = dict(log.train)
    assert by_iter[3]['loss'] == pytest.approx(2.0 / 3)  # first session
    assert by_iter[4]['loss'] == pytest.approx(2.0 / 4 + 1.0)  # later wins
    assert [step for step, _ in log.val] == [3, 6]
    assert dict(log.val)[6]['mIoU'] == 61.0
    latest = distill_log.load_run(str(run), latest=True)
    assert [it for it, _ in latest.train] == [4, 5, 6]
    out = tool.main([str(run)])
    assert_png(out)
    # a timestamp dir without scalars (e.g. a test run) is skipped
    os.makedirs(run / '20240103_000000' / 'vis_data')
    assert len(distill_log.load_run(str(run)).files) == 2


def test_by_epoch_classification_runs(tmp_path, tool):
    """MMPretrain runs: total ``loss`` only (plain) or ``student.loss``
    (ClsDistiller); validation logged per epoch."""
    plain, distilled = tmp_path / 'r8x4', tmp_path / 'gdkd_r8x4'
    for run, distill in ((plain, False), (distilled, True)):
        records = []
        for epoch in (1, 2):
            for inner in (5, 10):
                it = (epoch - 1) * 10 + inner
                rec = {'lr': 0.05, 'loss': 4.0 / it, 'epoch': epoch,
                       'iter': it, 'step': it}
                if distill:
                    rec.update({'student.loss': 3.0 / it,
                                'distill.head.loss_gdkd': 1.0 / it,
                                'distill.head.gdkd_high': 0.1,
                                'distill.head.gdkd_low_top': 0.2,
                                'distill.head.gdkd_low_other': 0.3})
                records.append(rec)
            records.append({'accuracy/top1': 10.0 * epoch, 'step': epoch})
        write_log(run, '20240101_000000', records)
    runs = [distill_log.load_run(str(plain)),
            distill_log.load_run(str(distilled))]
    assert [r.val_unit for r in runs] == ['epoch', 'epoch']
    panels = panels_by_title(distill_log.auto_panels(runs))
    task = panels['student task loss: loss']
    assert [line.run for line in task.lines] == [0, 1]
    assert task.lines[1].y == pytest.approx(3.0 / np.array([5, 10, 15, 20]))
    val = panels['validation accuracy/top1']
    assert val.xlabel == 'epoch' and val.lines[0].x.tolist() == [1, 2]
    assert 'GDKD components (head head)' in panels
    assert_png(tool.main([str(plain), str(distilled), '--out',
                          str(tmp_path / 'cls.png')]))


def test_keys_patterns(tmp_path, tool):
    run = tmp_path / 'gdkd'
    write_log(run, '20240101_000000', gdkd_records(range(1, 7)))
    log = distill_log.load_run(str(run))
    panels = distill_log.key_panels([log], ['distill.decode.gdkd_*', 'mIoU'])
    assert [p.title for p in panels] == ['distill.decode.gdkd_*', 'mIoU']
    assert [line.name for line in panels[0].lines] == [
        f'distill.decode.gdkd_{part}' for part in PARTS]
    assert panels[1].lines[0].x.tolist() == [3, 6]
    with pytest.warns(UserWarning, match='nothing'):
        assert distill_log.key_panels([log], ['nothing*']) == []
    assert_png(tool.main([str(run), '--keys', 'distill.*.loss_*', '--logy',
                          '--out', str(tmp_path / 'keys.png')]))


def test_reading_errors(tmp_path, tool):
    with pytest.raises(FileNotFoundError, match='no_such_run'):
        tool.main([str(tmp_path / 'no_such_run')])
    empty = tmp_path / 'empty_run'
    empty.mkdir()
    with pytest.raises(FileNotFoundError,
                       match=r'empty_run.*<timestamp>.*scalars\.json'):
        tool.main([str(empty)])
    # an incomplete last line (a run still writing) is skipped
    path = write_log(tmp_path / 'live', '20240101_000000',
                     gdkd_records(range(1, 4)))
    with open(path, 'a') as f:
        f.write('{"lr": 0.01, "loss": 0.')
    with pytest.warns(UserWarning, match='incomplete last line'):
        log = distill_log.load_run(str(tmp_path / 'live'))
    assert len(log.train) == 3
    # a broken line in the middle is an error naming file and line
    with open(path, 'w') as f:
        f.write('{"iter": 1, "loss": 1.0, "step": 1}\nnot json\n'
                '{"iter": 2, "loss": 1.0, "step": 2}\n')
    with pytest.raises(ValueError, match=r'scalars\.json, line 2'):
        distill_log.load_run(str(tmp_path / 'live'))
    with pytest.raises(SystemExit):
        tool.parse_args([str(empty), '--labels', 'a', 'b'])


def test_command_line(tmp_path, python_env, python_exe):
    run = tmp_path / 'gdkd'
    write_log(run, '20240101_000000', gdkd_records(range(1, 7)))
    missing = str(tmp_path / 'missing_run')
    proc = subprocess.run([python_exe, TOOL, str(run), missing],
                          cwd=REPO_ROOT, env=python_env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 1
    assert f"error: run dir '{missing}' does not exist" in proc.stderr
    assert 'Traceback' not in proc.stderr
