# Copyright (c) mmgdkd contributors. All rights reserved.
"""mmgdkd: GDKD knowledge distillation for MMSegmentation and MMPretrain.

Importing the package applies the environment shims of :mod:`mmgdkd.compat`
(before any host library is imported), makes ``mmgdkd::`` config paths
resolve (:mod:`mmgdkd.mim`) and registers every mmgdkd component into the
hosts' ``MODELS`` registries.
"""
from . import compat, mim

compat.apply()
mim.register_config_package()  # `mmgdkd::` config paths

from . import engine, models  # noqa: E402,F401  (registers the components)
from .version import __version__, version_info  # noqa: E402

__all__ = ['__version__', 'version_info', 'compat', 'engine', 'models']
