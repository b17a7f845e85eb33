# Copyright (c) mmgdkd contributors. All rights reserved.
import os
import os.path as osp
import re
import warnings

from setuptools import Extension, find_packages, setup
from setuptools.command.build_ext import build_ext

HERE = osp.dirname(osp.abspath(__file__))


def get_version() -> str:
    with open(osp.join(HERE, 'mmgdkd', 'version.py'), encoding='utf-8') as f:
        return re.search(r"__version__ = '([^']+)'", f.read()).group(1)


def parse_requirements(name: str) -> list:
    """Requirement lines of ``requirements/<name>.txt`` (comments dropped)."""
    path = osp.join(HERE, 'requirements', f'{name}.txt')
    with open(path, encoding='utf-8') as f:
        lines = (line.split('#', 1)[0].strip() for line in f)
        return [line for line in lines if line and not line.startswith('-')]


def readme() -> str:
    with open(osp.join(HERE, 'README.md'), encoding='utf-8') as f:
        return f.read()


class OptionalBuildExt(build_ext):
    """Build the native loss kernel if a C++ compiler is there; without it
    mmgdkd still installs and the losses use their pure-torch path."""

    def run(self):
        try:
            super().run()
        except Exception as exc:  # noqa: BLE001 (any compiler failure)
            warnings.warn(f'mmgdkd: native loss kernel not built ({exc}); '
                          'the losses fall back to pure torch')


def native_extensions() -> list:
    """The fused CPU decoupled-KL kernel (plain C++17 + CPython API, no
    torch headers: compiles in seconds). ``MMGDKD_WITH_NATIVE=0`` skips it."""
    if os.environ.get('MMGDKD_WITH_NATIVE', '1') == '0':
        return []
    return [
        Extension(
            'mmgdkd.models.losses._decoupled_kl_cpu',
            sources=['mmgdkd/models/losses/csrc/decoupled_kl.cpp'],
            language='c++',
            # No -ffast-math: the kernel relies on NaN propagating.
            extra_compile_args=[
                '-O3', '-std=c++17', '-fopenmp-simd', '-fno-math-errno',
                '-fno-trapping-math',
                '-pthread'
            ],
            extra_link_args=['-pthread'])
    ]


setup(
    name='mmgdkd',
    version=get_version(),
    description='Generalized Decoupled Knowledge Distillation (GDKD) for '
    'MMSegmentation and MMPretrain',
    long_description=readme(),
    long_description_content_type='text/markdown',
    license='Apache License 2.0',
    packages=find_packages(exclude=('configs', 'tools', 'tests', 'demo')),
    # The configs, for `mmgdkd::` paths (mmgdkd/mim.py): mmgdkd/.mim/configs
    # links to configs/, so a wheel gets a copy and an editable install
    # reads the checkout. The kernel source is compiled, not shipped.
    include_package_data=False,
    package_data={
        'mmgdkd': [
            '.mim/model-index.yml', '.mim/configs/*/*.py',
            '.mim/configs/*/*/*.py', '.mim/configs/*.md',
            '.mim/configs/*/README.md'
        ]
    },
    python_requires='>=3.8',
    install_requires=parse_requirements('runtime'),
    extras_require={
        'tests': parse_requirements('tests'),
        'cpu': parse_requirements('cpu-pinned'),
    },
    classifiers=[
        'Programming Language :: Python :: 3',
        'Topic :: Scientific/Engineering :: Artificial Intelligence',
    ],
    ext_modules=native_extensions(),
    cmdclass={'build_ext': OptionalBuildExt},
    zip_safe=False,
)
