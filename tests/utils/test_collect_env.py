# Copyright (c) mmgdkd contributors. All rights reserved.
"""The environment report names the hosts and the loss backend (and why)."""
from mmgdkd.models.losses import native, utils as loss_utils
from mmgdkd.utils.collect_env import collect_env


def test_report_names_hosts_and_backend(monkeypatch):
    env = collect_env()
    for key in ('PyTorch', 'MMEngine', 'mmcv', 'mmseg', 'mmpretrain',
                'mmgdkd'):
        assert env[key] and not env[key].startswith('not available'), key
    assert env['mmgdkd losses'] == native.native_status()
    monkeypatch.setenv('MMGDKD_NATIVE', '0')
    assert collect_env()['mmgdkd losses'] == (
        'pure torch (native CPU kernel: disabled by MMGDKD_NATIVE=0)')


def test_backend_logged_once(monkeypatch):
    import mmengine.logging

    from mmgdkd.models.losses import GDKDLoss, KDLoss
    logged = []
    monkeypatch.setattr(mmengine.logging, 'print_log',
                        lambda msg, **kwargs: logged.append(msg))
    monkeypatch.setattr(loss_utils, '_reported', False)
    GDKDLoss()
    KDLoss()
    assert logged == [f'mmgdkd losses: {native.native_status()}']
