# Copyright (c) mmgdkd contributors. All rights reserved.
"""Third-party deprecation warnings a user can do nothing about.

The host stack repeats them on every run (mmengine re-imports
``pkg_resources`` each time it resolves an ``mmseg::`` path, five times per
run), burying the lines that matter. The tools silence exactly these, once,
at start-up; the library itself leaves the process's warning filters alone.
"""
import warnings

#: ``(category, message regex)`` of each silenced warning.
KNOWN_DEPRECATIONS = (
    # setuptools < 82 is pinned because mmengine needs pkg_resources.
    (UserWarning, r'pkg_resources is deprecated as an API'),
    # MMSeg's own heads call its deprecated builder.
    (UserWarning, r'``build_loss`` would be deprecated soon'),
    # mmcv/mmengine decorate with torch.jit on import.
    (DeprecationWarning, r'`torch\.jit\.(script|interface)` is deprecated'),
)


def silence_known_deprecations() -> None:
    """Ignore :data:`KNOWN_DEPRECATIONS` in this process (tools only)."""
    for category, message in KNOWN_DEPRECATIONS:
        warnings.filterwarnings('ignore', message=message, category=category)
