# Copyright (c) mmgdkd contributors. All rights reserved.
"""End to end through tools/train.py, tools/test.py and dist_train.sh with a
GDKD config derived by ``_base_`` from the real Cityscapes one."""
import glob
import json
import os.path as osp
import re
import shutil
import subprocess

import pytest
import torch

from helpers import (PSPNET_R18, build_segmentor, run_dist_train,
                     tiny_seg_overrides, tiny_segmentor, write_config)

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


def _printed(line: str, key: str) -> float:
    return float(re.search(rf'{re.escape(key)}: (-?[\d.]+)', line).group(1))


def test_printed_components_add_up_to_the_printed_loss(uninterrupted):
    """Terms and components are averaged over the same logging window
    (docs/losses.md, "In the training log"): at iteration 4 the window holds
    4 different values, and the identity holds in the printed numbers
    (GDKD k=3, w0=w1=1, w2=2, loss_weight 1; decode head weight 1, no
    warm-up)."""
    line = [line for line in uninterrupted['log'].splitlines()
            if 'Iter(train) [4/4]' in line][-1]
    total = _printed(line, 'distill.decode.loss_gdkd')
    parts = (_printed(line, 'distill.decode.gdkd_high') +
             _printed(line, 'distill.decode.gdkd_low_top') +
             2 * _printed(line, 'distill.decode.gdkd_low_other'))
    assert total == pytest.approx(parts, abs=3e-4)
    # and the components vary, so this is not satisfied by a constant
    records = [r for r in scalars(uninterrupted['work_dir'])
               if 'distill.decode.gdkd_high' in r]
    assert len({r['distill.decode.gdkd_high'] for r in records}) > 1


def test_tools_silence_known_deprecations_only(uninterrupted):
    log = uninterrupted['log']
    assert 'pkg_resources is deprecated' not in log
    assert '``build_loss`` would be deprecated' not in log
    # other warnings still reach the user (MMSeg's advice on its CE loss)
    assert 'avg_non_ignore' in log


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


def run_tool_failing(repo_root, env, python_exe, tool, *args) -> str:
    proc = subprocess.run([python_exe, osp.join(repo_root, 'tools', tool),
                           *args], cwd=repo_root, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode != 0, proc.stdout[-2000:]
    return proc.stdout + proc.stderr


def test_auto_resume_skips_a_truncated_checkpoint(
        workspace, uninterrupted, repo_root, python_env, python_exe):
    """The latest checkpoint is truncated: the run warns, resumes from the
    intact one before it and ends exactly like the uninterrupted run."""
    work_dir = workspace['root'] / 'truncated'
    work_dir.mkdir()
    source = uninterrupted['work_dir']
    intact = str(work_dir / 'iter_2.pth')
    shutil.copy(osp.join(source, 'iter_2.pth'), intact)
    damaged = str(work_dir / 'iter_4.pth')
    with open(osp.join(source, 'iter_4.pth'), 'rb') as f:
        data = f.read()
    with open(damaged, 'wb') as f:
        f.write(data[:len(data) // 3])
    (work_dir / 'last_checkpoint').write_text(damaged)
    with open(intact, 'rb') as f:
        intact_bytes = f.read()

    log = run_tool(repo_root, python_env, python_exe, 'train.py',
                   workspace['config'], '--work-dir', str(work_dir),
                   '--resume')
    assert f"'{damaged}' is corrupt or truncated" in log
    assert f"resuming from the newest intact one, '{intact}'" in log
    assert 'resumed epoch: 0, iter: 2' in log
    with open(intact, 'rb') as f:
        assert f.read() == intact_bytes  # the intact one is untouched
    resumed = torch.load(damaged, weights_only=True)['state_dict']
    straight = torch.load(osp.join(source, 'iter_4.pth'),
                          weights_only=True)['state_dict']
    for key in straight:
        assert torch.equal(resumed[key], straight[key]), key


def test_resume_of_another_distillation_setup_is_refused(
        workspace, uninterrupted, repo_root, python_env, python_exe):
    ckpt = osp.join(uninterrupted['work_dir'], 'iter_2.pth')
    work_dir = str(workspace['root'] / 'other_setup')
    args = ('train.py', workspace['config'], '--work-dir', work_dir,
            '--resume', ckpt, '--cfg-options', 'train_cfg.max_iters=2',
            'model.distill_losses.loss_gdkd.w2=8.0')
    log = run_tool_failing(repo_root, python_env, python_exe, *args)
    assert f"refusing to resume '{ckpt}'" in log
    assert 'w2=2.0' in log and 'w2=8.0' in log
    assert not osp.exists(osp.join(work_dir, 'iter_2.pth'))
    # the explicit override resumes it (nothing left to train at iter 2)
    log = run_tool(repo_root, python_env, python_exe, *args,
                   '--resume-any-setup')
    assert 'resumed epoch: 0, iter: 2' in log


def _test_metrics(log: str) -> str:
    """The final ``Iter(test)`` metrics line of a test run."""
    lines = [line for line in log.splitlines()
             if 'Iter(test)' in line and 'mIoU' in line]
    assert lines, log[-3000:]
    return lines[-1].split('mIoU:')[1].split()[0]


def test_mmseg_own_test_tool_evaluates_the_student(
        workspace, uninterrupted, repo_root, python_env, python_exe):
    """MMSeg's tools/test.py (shipped in mmseg/.mim), the plain student
    config and the distilled checkpoint: the same mIoU as our tool."""
    import mmseg

    from mmgdkd import compat
    ckpt = osp.join(uninterrupted['work_dir'], 'iter_4.pth')
    config = workspace['student_config']
    if compat.IMPORT_NEEDED_BY:
        # the pinned CPU stack: MMSeg cannot be imported without the shims;
        # the config's own custom_imports load them (README, "Checkpoints")
        config = write_config(
            str(workspace['root'] / 'student_tiny_cpu.py'), config,
            custom_imports=dict(imports=['mmgdkd'],
                                allow_failed_imports=False))
    mmseg_test = osp.join(osp.dirname(mmseg.__file__), '.mim', 'tools',
                          'test.py')
    run_dir = workspace['root'] / 'mmseg_test'
    run_dir.mkdir()
    proc = subprocess.run(
        [python_exe, mmseg_test, config, ckpt, '--work-dir', str(run_dir)],
        cwd=str(run_dir), env=python_env, capture_output=True, text=True,
        timeout=600)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-4000:]
    ours = run_tool(repo_root, python_env, python_exe, 'test.py',
                    workspace['student_config'], ckpt, '--work-dir',
                    str(workspace['root'] / 'our_test'))
    assert _test_metrics(log) == _test_metrics(ours)


def test_extracted_student_loads_without_mmgdkd(
        workspace, uninterrupted, repo_root, python_env, python_exe):
    """torch >= 2.6 refuses an mmengine training checkpoint's log history
    without mmgdkd's allow-list; the extracted weights need none."""
    ckpt = osp.join(uninterrupted['work_dir'], 'iter_4.pth')
    out = str(workspace['root'] / 'student_weights.pth')
    run_tool(repo_root, python_env, python_exe,
             'model_converters/extract_student.py', ckpt, out)
    code = ('import sys, torch; c = torch.load(sys.argv[1], '
            'weights_only=True); assert "mmgdkd" not in sys.modules; '
            'print(len(c["state_dict"]))')
    proc = subprocess.run([python_exe, '-c', code, out], capture_output=True,
                          text=True, timeout=300,
                          env=dict(PATH=python_env['PATH'],
                                   OMP_NUM_THREADS='1'))
    assert proc.returncode == 0, proc.stderr[-3000:]
    expected = torch.load(ckpt, weights_only=True)['state_dict']
    assert int(proc.stdout.split()[-1]) == len(expected)
