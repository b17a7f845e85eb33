# Copyright (c) mmgdkd contributors. All rights reserved.
"""``mmgdkd::`` config paths, the way ``mmseg::`` ones work.

mmengine resolves ``'<module>::<folder>/<file>.py'`` (in ``_base_``, in
``get_config`` and in a distiller's ``cfg_path``) to
``<installed package>/.mim/configs/<folder>/<file>.py``, but only for the
OpenMMLab packages of its ``MODULE2PACKAGE`` table, and it finds the
package through its distribution's install location, which is wrong for an
editable install (setuptools' import hook: the location is site-packages,
the code is in the checkout) and for a checkout on ``PYTHONPATH``; it
also gives a ``<package>::`` base that package's registry scope, and
mmgdkd registers into MMSeg's and MMPretrain's registries instead.

:func:`register_config_package` adds ``mmgdkd`` to that table and makes
mmengine look for its configs beside the ``mmgdkd`` that is imported,
without a scope of their own. The
package ships them as ``mmgdkd/.mim/configs``: a link to the repository's
``configs/`` in a checkout or an editable install, a copy in a wheel.
``import mmgdkd`` runs it, so a config with an ``mmgdkd::`` base must be
parsed after ``import mmgdkd`` (every mmgdkd tool does that first).
"""
import os.path as osp
from typing import Callable

PACKAGE = 'mmgdkd'
PACKAGE_DIR = osp.dirname(osp.abspath(__file__))
#: Where mmengine looks for ``mmgdkd::`` configs.
CONFIG_DIR = osp.join(PACKAGE_DIR, '.mim', 'configs')


def _this_package_first(get_installed_path: Callable[[str], str]
                        ) -> Callable[[str], str]:
    if getattr(get_installed_path, '_mmgdkd', False):
        return get_installed_path

    def installed_path(package: str) -> str:
        if package == PACKAGE:
            return PACKAGE_DIR
        return get_installed_path(package)

    installed_path._mmgdkd = True
    installed_path.__doc__ = get_installed_path.__doc__
    return installed_path


def _no_own_scope(get_cfg_path: Callable) -> Callable:
    """mmengine gives the variables of a ``<package>::`` base that package's
    registry scope; mmgdkd has no registry of its own (its components live
    in MMSeg's and MMPretrain's), so its configs keep the scope of the file
    that inherits them, as a base given by a relative path does."""
    if getattr(get_cfg_path, '_mmgdkd', False):
        return get_cfg_path

    def cfg_path_and_scope(cfg_path: str, filename: str):
        path, scope = get_cfg_path(cfg_path, filename)
        return path, (None if scope == PACKAGE else scope)

    cfg_path_and_scope._mmgdkd = True
    return cfg_path_and_scope


def register_config_package() -> None:
    """Let mmengine resolve ``mmgdkd::`` config paths (idempotent)."""
    import mmengine.config.config as config_module
    import mmengine.hub.hub as hub_module
    from mmengine.config.utils import MODULE2PACKAGE

    MODULE2PACKAGE.setdefault(PACKAGE, PACKAGE)
    for module in (config_module, hub_module):
        module.get_installed_path = _this_package_first(
            module.get_installed_path)
    config = config_module.Config
    config._get_cfg_path = staticmethod(_no_own_scope(config._get_cfg_path))
