# Copyright (c) mmgdkd contributors. All rights reserved.
"""Shared fixtures: tiny Cityscapes-format data and tiny derived configs.

Plain helper functions live in ``helpers.py`` (``from helpers import ...``).
"""
import os
import sys
from typing import Callable

import pytest

import mmgdkd  # noqa: F401  (compat shims before any host import)
from helpers import (REPO_ROOT, TINY_CROP, tiny_seg_overrides, tiny_segmentor,
                     write_config)


def pytest_configure(config):
    config.addinivalue_line(
        'markers', 'slow: end-to-end runs (seconds to a minute each); they '
        'still run in CI')


@pytest.fixture(autouse=True)
def isolated_default_scope():
    """Keep one test's mmengine default scope from leaking into the next.

    ``init_default_scope``/``register_all_modules`` set a process-wide
    scope, and a later build through another host's registry would then
    search the wrong one.
    """
    from mmengine.registry import DefaultScope
    saved = dict(DefaultScope._instance_dict)
    yield
    DefaultScope._instance_dict.clear()
    DefaultScope._instance_dict.update(saved)


@pytest.fixture(scope='session')
def repo_root() -> str:
    return REPO_ROOT


@pytest.fixture(scope='session')
def cityscapes_root(tmp_path_factory) -> str:
    """A tiny Cityscapes tree: 4 train and 2 val images of 64x128."""
    from mmgdkd.datasets.synthetic_cityscapes import generate_cityscapes
    root = str(tmp_path_factory.mktemp('cityscapes'))
    generate_cityscapes(root, num_train=4, num_val=2, size=TINY_CROP, seed=0)
    return root


@pytest.fixture
def write_cfg() -> Callable[..., str]:
    return write_config


@pytest.fixture(scope='session')
def tiny_seg_settings() -> Callable[..., dict]:
    return tiny_seg_overrides


@pytest.fixture(scope='session')
def tiny_model_overrides() -> Callable[..., dict]:
    return tiny_segmentor


@pytest.fixture(scope='session')
def python_env() -> dict:
    """Environment for tool subprocesses: the repo importable, 1 thread."""
    env = dict(os.environ)
    env['PYTHONPATH'] = os.pathsep.join(
        [REPO_ROOT] + [p for p in env.get('PYTHONPATH', '').split(os.pathsep)
                       if p])
    env.setdefault('OMP_NUM_THREADS', '1')
    return env


@pytest.fixture(scope='session')
def python_exe() -> str:
    return sys.executable
