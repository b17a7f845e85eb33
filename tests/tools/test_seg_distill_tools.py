# Copyright (c) mmgdkd contributors. All rights reserved.
"""End to end through tools/train.py, tools/test.py and dist_train.sh with a
GDKD config derived by ``_base_`` from the real Cityscapes one."""
import glob
import json
import os.path as osp
import subprocess

import pytest
import torch

from helpers import (PSPNET_R18, build_segmentor, run_dist_train, tiny_seg_overrides,
                      tiny_segmentor, write_config)

pytestmark = pytest.mark.slow
GDKD_CONFIG = 'configs/gdkd/pspnet_r101_r18_cityscapes.py'


@pytest.fixture(scope='module')
def workspace(tmp_path_factory, cityscapes_root, repo_root):
    """A teacher checkpoint and a tiny GDKD config inheriting the real one."""
    root = tmp_path_factory.mktemp('seg_tools')
    torch.manual_seed(3)
    teacher = build_segmentor()
    teacher_ckpt = str(root / 'teacher_r18.pth')
    torch.save({'state_dict': teacher.state_dict(), 'meta': {}}, teacher_ckpt)
    config = write_config(
        str(root / 'gdkd_tiny.py'), osp.join(repo_root, GDKD_CONFIG),
        model=dict(
            student=tiny_segmentor(),
            teacher=dict(cfg_path=PSPNET_R18, **tiny_segmentor()),
            teacher_ckpt=teacher_ckpt),
        **tiny_seg_overrides(cityscapes_root, max_iters=4, val_interval=2,
                             schedule_iters=4))
    student_config = write_config(
        str(root / 'student_tiny.py'), PSPNET_R18, model=tiny_segmentor(),
        **tiny_seg_overrides(cityscapes_root))
    return dict(root=root, config=config, student_config=student_config,
                data_root=cityscapes_root)


def run_tool(repo_root, env, python_exe, tool, *args):
    proc = subprocess.run([python_exe, osp.join(repo_root, 'tools', tool),
                           *args], cwd=repo_root, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    return proc.stdout + proc.stderr


def scalars(work_dir) -> list:
    path, = glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json'))
    with open(path) as f:
        return [json.loads(line) for line in f]


@pytest.fixture(scope='module')
def uninterrupted(workspace, repo_root, python_env, python_exe):
    work_dir = str(workspace['root'] / 'uninterrupted')
    log = run_tool(repo_root, python_env, python_exe, 'train.py',
                   workspace['config'], '--work-dir', work_dir)
    return dict(work_dir=work_dir, log=log)


def test_train_logs_every_component(uninterrupted):
    records = scalars(uninterrupted['work_dir'])
    train_keys = set().union(*[r for r in records if 'loss' in r])
    for key in ('loss', 'student.decode.loss_ce', 'student.aux.loss_ce',
                'distill.decode.loss_gdkd', 'distill.aux.loss_gdkd',
                'distill.decode.gdkd_high', 'distill.decode.gdkd_low_top',
                'distill.decode.gdkd_low_other', 'distill.aux.gdkd_high',
                'distill.warmup_factor'):
        assert key in train_keys, key
    assert any('mIoU' in r for r in records)
    # the optimised total is the sum of the loss terms only
    first = next(r for r in records if 'loss' in r)
    total = sum(v for k, v in first.items() if 'loss' in k and k != 'loss')
    assert first['loss'] == pytest.approx(total, rel=1e-3)
    assert 'Loaded teacher weights from' in uninterrupted['log']


def test_resume_equals_uninterrupted(workspace, uninterrupted, repo_root,
                                     python_env, python_exe):
    work_dir = str(workspace['root'] / 'interrupted')
    run_tool(repo_root, python_env, python_exe, 'train.py',
             workspace['config'], '--work-dir', work_dir, '--cfg-options',
             'train_cfg.max_iters=2')
    assert osp.isfile(osp.join(work_dir, 'iter_2.pth'))
    log = run_tool(repo_root, python_env, python_exe, 'train.py',
                   workspace['config'], '--work-dir', work_dir, '--resume')
    assert 'resumed epoch' in log
    resumed = torch.load(osp.join(work_dir, 'iter_4.pth'),
                         weights_only=True)['state_dict']
    straight = torch.load(
        osp.join(uninterrupted['work_dir'], 'iter_4.pth'),
        weights_only=True)['state_dict']
    assert list(resumed) == list(straight)
    for key in straight:
        assert torch.equal(resumed[key], straight[key]), key


def test_checkpoint_is_a_plain_mmseg_checkpoint(workspace, uninterrupted):
    from mmseg.apis import inference_model, init_model
    ckpt = osp.join(uninterrupted['work_dir'], 'iter_4.pth')
    image = sorted(glob.glob(osp.join(workspace['data_root'], 'leftImg8bit',
                                      'val', '*', '*.png')))[0]
    plain = init_model(workspace['student_config'], ckpt, device='cpu')
    assert type(plain).__name__ == 'EncoderDecoder'
    distiller = init_model(workspace['config'], ckpt, device='cpu')
    assert type(distiller).__name__ == 'SegDistiller'
    plain_pred = inference_model(plain, image).pred_sem_seg.data
    distilled_pred = inference_model(distiller, image).pred_sem_seg.data
    assert torch.equal(plain_pred, distilled_pred)


def test_test_tool_evaluates_the_student(workspace, uninterrupted, repo_root,
                                         python_env, python_exe):
    ckpt = osp.join(uninterrupted['work_dir'], 'iter_4.pth')
    log = run_tool(repo_root, python_env, python_exe, 'test.py',
                   workspace['config'], ckpt, '--work-dir',
                   str(workspace['root'] / 'test'))
    assert 'evaluating the student alone' in log
    assert 'mIoU' in log
    assert 'Loaded teacher weights' not in log


def test_extract_student_from_checkpoint_with_teacher(
        workspace, uninterrupted, repo_root, python_env, python_exe):
    work_dir = str(workspace['root'] / 'with_teacher')
    run_tool(repo_root, python_env, python_exe, 'train.py',
             workspace['config'], '--work-dir', work_dir, '--cfg-options',
             'train_cfg.max_iters=2', 'model.checkpoint_teacher=True')
    ckpt = osp.join(work_dir, 'iter_2.pth')
    state = torch.load(ckpt, weights_only=True)['state_dict']
    assert any(k.startswith('teacher.') for k in state)
    out = str(workspace['root'] / 'student_only.pth')
    run_tool(repo_root, python_env, python_exe,
             'model_converters/extract_student.py', ckpt, out)
    student = torch.load(out, weights_only=True)['state_dict']
    plain = build_segmentor()
    plain.load_state_dict(student, strict=True)


def test_distillation_ddp_two_processes(workspace, repo_root, python_env,
                                        python_exe):
    if torch.cuda.is_available():
        pytest.skip('CPU/gloo path')
    work_dir = str(workspace['root'] / 'ddp')
    proc = run_dist_train(repo_root, workspace['config'], work_dir,
                          python_env, python_exe,
                          extra=['--cfg-options', 'train_cfg.max_iters=2'])
    log = proc.stdout + proc.stderr
    assert 'GPU number: 2' in log
    assert osp.isfile(osp.join(work_dir, 'iter_2.pth'))
    records = scalars(work_dir)
    assert any('distill.decode.loss_gdkd' in r for r in records)
