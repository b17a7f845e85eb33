# Copyright (c) mmgdkd contributors. All rights reserved.
"""The environment mmgdkd runs in, for bug reports and to make a silent
fallback of the losses to their pure-torch path visible.

    python -m mmgdkd.utils.collect_env
"""
from collections import OrderedDict
from typing import Dict


def _version(module_name: str) -> str:
    try:
        module = __import__(module_name)
    except Exception as exc:  # noqa: BLE001 (report, never fail)
        return f'not available ({type(exc).__name__}: {exc})'
    return getattr(module, '__version__', 'unknown')


def collect_env() -> Dict[str, str]:
    """mmengine's environment report plus the OpenMMLab hosts, mmgdkd and
    the backend of its losses (native CPU kernel or pure torch, and why)."""
    import mmgdkd  # noqa: F401  (compat shims before any host import)
    from mmengine.utils.dl_utils import collect_env as collect_base

    from mmgdkd.models.losses import native_status
    env = OrderedDict(collect_base())
    for name in ('mmcv', 'mmseg', 'mmpretrain', 'mmgdkd'):
        env[name] = _version(name)
    env['mmgdkd losses'] = native_status()
    return env


def main() -> None:
    for name, value in collect_env().items():
        print(f'{name}: {value}')


if __name__ == '__main__':
    main()
