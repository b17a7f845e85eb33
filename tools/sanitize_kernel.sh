#!/usr/bin/env bash
# Build the native loss kernel with AddressSanitizer and UndefinedBehavior-
# Sanitizer into a scratch copy of the package and run the kernel's tests
# against it (not part of CI: it takes a few minutes and needs GCC or clang
# with the sanitizer runtimes). The worktree's own build is not touched.
#
#   make sanitize            # or: tools/sanitize_kernel.sh [pytest args]
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PY="${PY:-python}"
# A relative interpreter path (make's PY=.venv/bin/python) must survive the
# cd into the tests below.
case "$PY" in
  */*) PY="$(cd "$(dirname "$PY")" && pwd)/$(basename "$PY")" ;;
esac
CXX="${CXX:-g++}"
SCRATCH="$(mktemp -d)"
trap 'rm -rf "$SCRATCH"' EXIT
cp -r "$ROOT/mmgdkd" "$SCRATCH/"
rm -f "$SCRATCH"/mmgdkd/models/losses/_decoupled_kl_cpu*.so
EXT="$("$PY" -c 'import sysconfig; print(sysconfig.get_config_var("EXT_SUFFIX"))')"
INC="$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')"
OUT="$SCRATCH/mmgdkd/models/losses/_decoupled_kl_cpu$EXT"
# The same flags as setup.py, at -O1 with frame pointers for readable
# reports; -fno-sanitize-recover makes any UB finding fatal.
"$CXX" -shared -fPIC -O1 -g -fno-omit-frame-pointer -std=c++17 \
  -fopenmp-simd -fno-math-errno -fno-trapping-math -pthread \
  -fsanitize=address,undefined -fno-sanitize-recover=all \
  -I"$INC" "$ROOT/mmgdkd/models/losses/csrc/decoupled_kl.cpp" -o "$OUT"
echo "sanitized kernel: $OUT"
PRELOAD="$("$CXX" -print-file-name=libasan.so):$("$CXX" -print-file-name=libubsan.so)"
# Python itself leaks by design (detect_leaks=0). ASan aborts on the
# 2**45-float allocation of the std::bad_alloc test instead of throwing, so
# that one test runs only in the plain build.
cd "$ROOT/tests/models/losses"
env LD_PRELOAD="$PRELOAD" \
  ASAN_OPTIONS=detect_leaks=0:allocator_may_return_null=1:abort_on_error=1 \
  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  PYTHONPATH="$SCRATCH" OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}" \
  "$PY" -m pytest -q -p no:cacheprovider test_native_kernel.py \
  test_decoupled_kl.py test_gdkd_loss.py test_dkd_kd_cwd_loss.py \
  -k 'not kernel_errors_become_python_exceptions' "$@"
