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


_CLONES_PROBE = r"""
__attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
int probe(int x) { return x + 1; }
int main() { return probe(0) - 1; }
"""


def _compiles(compiler, source: str, args: list) -> bool:
    """Whether ``compiler`` compiles ``source`` with ``args`` (warnings as
    errors, so that an ignored attribute counts as unsupported)."""
    import tempfile
    with tempfile.TemporaryDirectory() as tmp:
        path = osp.join(tmp, 'probe.cpp')
        with open(path, 'w', encoding='utf-8') as f:
            f.write(source)
        try:
            compiler.compile([path], output_dir=tmp,
                             extra_postargs=args + ['-Werror'])
        except Exception:  # noqa: BLE001 (any compiler failure)
            return False
    return True


def _say(message: str) -> None:
    """A message pip shows (plain warnings are often hidden)."""
    import sys
    print(f'mmgdkd: {message}', file=sys.stderr, flush=True)


class OptionalBuildExt(build_ext):
    """Build the native loss kernel if a C++17 compiler is there; without it
    mmgdkd still installs and the losses use their pure-torch path (said
    loudly here, and at run time by ``python -m mmgdkd.utils.collect_env``
    and in the training log).

    Compiler features are probed, not assumed: ``target_clones`` (AVX2 /
    AVX-512 variants picked at load time) needs GCC >= 12 on x86-64; clang,
    older GCC and other CPUs get a plain build. MSVC gets its own flags."""

    def build_extensions(self):
        msvc = self.compiler.compiler_type == 'msvc'
        for ext in self.extensions:
            if msvc:
                ext.extra_compile_args = ['/O2', '/std:c++17', '/EHsc']
                ext.extra_link_args = []
                continue
            ext.extra_compile_args = list(_GCC_ARGS)
            if _compiles(self.compiler, _CLONES_PROBE, ['-std=c++17']):
                ext.define_macros.append(('MMGDKD_TARGET_CLONES', '1'))
                _say('native loss kernel: building with AVX2/AVX-512 '
                     'variants (target_clones)')
            else:
                _say('native loss kernel: the compiler has no '
                     'target_clones (needs GCC >= 12 on x86-64); plain '
                     'build')
        super().build_extensions()

    def run(self):
        try:
            super().run()
        except Exception as exc:  # noqa: BLE001 (any compiler failure)
            _say(f'native loss kernel NOT built ({exc}); the losses use '
                 'the slower pure-torch path. Install a C++17 compiler '
                 'and reinstall to build it.')
            warnings.warn(f'mmgdkd: native loss kernel not built ({exc}); '
                          'the losses fall back to pure torch')


# No -ffast-math: the kernel relies on NaN propagating.
_GCC_ARGS = ('-O3', '-std=c++17', '-fopenmp-simd', '-fno-math-errno',
             '-fno-trapping-math', '-pthread')


def native_extensions() -> list:
    """The fused CPU decoupled-KL kernel (plain C++17 + CPython API, no
    torch headers: compiles in seconds). ``MMGDKD_WITH_NATIVE=0`` skips it."""
    if os.environ.get('MMGDKD_WITH_NATIVE', '1') == '0':
        _say('native loss kernel not built: MMGDKD_WITH_NATIVE=0; the '
             'losses use the pure-torch path')
        return []
    return [
        Extension(
            'mmgdkd.models.losses._decoupled_kl_cpu',
            sources=['mmgdkd/models/losses/csrc/decoupled_kl.cpp'],
            depends=[
                f'mmgdkd/models/losses/csrc/{name}.h'
                for name in ('kernel_base', 'partition', 'block_kernel')
            ],
            language='c++',
            extra_compile_args=list(_GCC_ARGS),
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
