# Copyright (c) mmgdkd contributors. All rights reserved.
"""``mmgdkd::`` config paths resolve from any folder, as ``mmseg::`` ones,
in a checkout and in an installed wheel; the demo configs' paths do not
depend on the working directory."""
import glob
import os.path as osp
import shutil
import subprocess
import zipfile

import pytest
from mmengine.config import Config
from mmengine.hub import get_config

from helpers import REPO_ROOT, write_config
from mmgdkd import mim
from mmgdkd.models.distillers.utils import load_model_cfg

MY_CONFIG = '''_base_ = 'mmgdkd::gdkd/pspnet_r101_r18_cityscapes.py'
model = dict(teacher_ckpt='/path/to/my_teacher.pth', warmup_iters=1000,
             distill_losses=dict(loss_gdkd=dict(k=5, w2=4.0)))
'''


def test_every_config_is_shipped_in_the_package():
    for path in glob.glob(osp.join(REPO_ROOT, 'configs', '**', '*.py'),
                          recursive=True):
        rel = osp.relpath(path, osp.join(REPO_ROOT, 'configs'))
        assert osp.samefile(osp.join(mim.CONFIG_DIR, rel), path), rel


def test_own_config_inherits_from_any_folder(tmp_path, monkeypatch):
    folder = tmp_path / 'elsewhere'
    folder.mkdir()
    (folder / 'my_gdkd.py').write_text(MY_CONFIG)
    monkeypatch.chdir(tmp_path)
    cfg = Config.fromfile('elsewhere/my_gdkd.py')
    loss = cfg.model.distill_losses.loss_gdkd
    assert (loss.type, loss.k, loss.w1, loss.w2) == ('GDKDLoss', 5, 1.0, 4.0)
    assert cfg.model.type == 'SegDistiller'
    assert cfg.model.teacher_ckpt == '/path/to/my_teacher.pth'
    # the base's own bases (relative and mmseg::) came along
    assert cfg.train_cfg.max_iters == 80000
    # built in the inheriting file's scope: mmgdkd has no registry of its own
    assert cfg.default_scope == 'mmseg'
    assert '_scope_' not in cfg.model
    assert cfg.train_dataloader.get('_scope_') in (None, 'mmseg')
    assert cfg.model.head_weights == dict(decode=1.0, aux=0.4)


def test_get_config_and_cfg_path_take_mmgdkd_paths():
    cfg = get_config('mmgdkd::kd/pspnet_r101_r18_cityscapes.py')
    assert cfg.model.distill_losses.loss_kd.type == 'KDLoss'
    model = load_model_cfg('mmgdkd::demo/pspnet_r18w16_synthetic.py')
    assert model.backbone.stem_channels == 16


def test_demo_paths_do_not_depend_on_the_working_directory(
        tmp_path, monkeypatch):
    name = 'demo/gdkd_pspnet_r18w32-r18w16_synthetic.py'
    seen = []
    for cwd, path in ((REPO_ROOT, osp.join('configs', name)),
                      (str(tmp_path), osp.join(REPO_ROOT, 'configs', name)),
                      (str(tmp_path), f'mmgdkd::{name}')):
        monkeypatch.chdir(cwd)
        cfg = get_config(path) if '::' in path else Config.fromfile(path)
        seen.append((cfg.train_dataloader.dataset.data_root,
                     cfg.model.teacher_ckpt))
    assert seen[0] == seen[1] == seen[2]
    data_root, teacher_ckpt = seen[0]
    assert data_root == osp.join(REPO_ROOT, 'data', 'synthetic_cityscapes/')
    assert teacher_ckpt == osp.join(REPO_ROOT, 'work_dirs', 'demo',
                                    'teacher', 'iter_400.pth')


@pytest.mark.slow
def test_wheel_ships_the_configs(tmp_path, python_exe):
    """A normal (non-editable) install: the configs are copied in."""
    # built from a copy: setuptools writes build/ and *.egg-info in place
    src = tmp_path / 'src'
    for name in ('mmgdkd', 'configs', 'requirements'):
        shutil.copytree(osp.join(REPO_ROOT, name), src / name, symlinks=True,
                        ignore=shutil.ignore_patterns('__pycache__', '*.so'))
    for name in ('setup.py', 'README.md'):
        shutil.copy(osp.join(REPO_ROOT, name), src / name)
    env = dict(MMGDKD_WITH_NATIVE='0', PATH='/usr/bin:/bin')
    proc = subprocess.run(
        [python_exe, '-m', 'pip', 'wheel', str(src), '--no-deps',
         '--no-build-isolation', '-q', '-w', str(tmp_path / 'wheel')],
        env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    wheel, = glob.glob(str(tmp_path / 'wheel' / '*.whl'))
    site = tmp_path / 'site'
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        archive.extractall(site)
    assert 'mmgdkd/.mim/configs/gdkd/pspnet_r101_r18_cityscapes.py' in names
    assert 'mmgdkd/.mim/model-index.yml' in names
    config = write_config(str(tmp_path / 'my.py'),
                          'mmgdkd::gdkd/pspnet_r101_r18_cityscapes.py')
    code = ('import mmgdkd; from mmengine.config import Config; '
            f'c = Config.fromfile({config!r}); '
            'print(mmgdkd.__file__, c.model.distill_losses.loss_gdkd.k)')
    proc = subprocess.run([python_exe, '-c', code], cwd=str(tmp_path),
                          env=dict(PYTHONPATH=str(site), PATH='/usr/bin:/bin',
                                   OMP_NUM_THREADS='1'),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.split()[-2:] == [
        str(site / 'mmgdkd' / '__init__.py'), '3']
