// Copyright (c) mmgdkd contributors. All rights reserved.
//
// Fused CPU kernel of the decoupled KL (KD, DKD, GDKD, GDKD3): the class
// partition, the loss and the closed-form gradient of docs/losses.md ("The
// gradient") in one sweep over the logits, for float32 channel-first
// ``(N, C, L)`` tensors.
//
// The Python twin is the torch path (``indexed.py``, ``decoupled.py``); it is
// the reference this kernel is tested against and the path for CUDA, float64
// and builds without this extension. The torch path needs a dozen full-size
// passes for GDKD (top-k, group split, sums, gradient); here a block of
// ``kBlock`` rows (pixels) is loaded once and every step runs on it while it
// sits in L1, vectorised across the rows, so GDKD costs little more than KD.
//
// Partition: a first pass over the block takes the row maxima and the
// teacher's k + 1 largest values (an insertion network, kept in registers).
// Where the k-th value is above the (k+1)-th on every row, an entry's group
// is its teacher value against the k-th, computed where it is used (no
// group-id pass); otherwise ties give some row more than k members and
// group ids are formed with ties broken towards the lower class index.
//
// Numerics: exponentials are taken after a shift by the row maximum; a block
// where some group sum falls below 1e-30 (a group ~69 nats below the row's
// best class) is redone with every group shifted by its own maximum, where
// no group sum can underflow (each holds exp(0) = 1). Group masses are
// log-sum-exps of in-group terms only (selected, never masked by a large
// negative number). A non-finite student logit makes its row's loss and
// gradient NaN (as in the torch path), so that AMP's grad scaler sees it.
//
// Plain C++17 and the CPython API only (no torch headers): it builds in
// seconds and runs on any CPU; on x86-64 with GCC >= 12 (setup.py probes the
// compiler and defines MMGDKD_TARGET_CLONES) the hot loops are also compiled
// for AVX2 and AVX-512 and picked at load time (``target_clones``).
//
// Errors: no C++ exception leaves the module. ``std::bad_alloc`` (scratch
// buffers) becomes MemoryError, anything else (e.g. ``std::system_error``
// from ``std::thread``) RuntimeError; a worker thread's exception is carried
// to the caller.
//
// Layout: kernel_base.h (parameters, exp/log), partition.h (the first pass
// and group ids), block_kernel.h (a block's loss and gradient); this file
// splits the blocks over threads and binds the kernel to Python.
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <exception>
#include <new>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "block_kernel.h"

namespace mmgdkd_native {
namespace {

constexpr int kVersion = 2;  // checked by the Python side (stale builds)

// The block's loss and gradient: row-max shifts, or group-wise shifts
// where a group sum underflows.
template <int G, bool INLINE>
void run_block(const Params& p, Scratch& w, int64_t n, int64_t l0, int width,
               double* acc) {
  if (p.rev != 0.0f) {
    if (!block_kernel<G, false, true, INLINE>(p, w, n, l0, width, acc))
      block_kernel<G, true, true, INLINE>(p, w, n, l0, width, acc);
  } else if (!block_kernel<G, false, false, INLINE>(p, w, n, l0, width, acc)) {
    block_kernel<G, true, false, INLINE>(p, w, n, l0, width, acc);
  }
}

template <int G>
void run_blocks(const Params& p, int64_t first, int64_t last, double* acc) {
  Scratch w(p);
  const int64_t per_row = (p.l + kBlock - 1) / kBlock;
  for (int64_t b = first; b < last; ++b) {
    const int64_t n = b / per_row;
    const int64_t l0 = (b % per_row) * kBlock;
    const int width = static_cast<int>(std::min<int64_t>(kBlock, p.l - l0));
    load_block(p, w, n, l0, width);
    const bool topk = p.mode == kTopK || p.mode == kBottomK || p.mode == kTopK3;
    const bool no_ties = scan_block(p, w, width);
    if (topk && !no_ties) assign_topk_exact(p, w);
    if constexpr (G == 2 || G == 3) {
      if (topk && no_ties) {
        run_block<G, true>(p, w, n, l0, width, acc);
        continue;
      }
    }
    run_block<G, false>(p, w, n, l0, width, acc);
  }
}

// Splits the blocks over threads. Throws whatever a thread threw (after
// every started thread has been joined).
void run(const Params& p, int threads, double* totals) {
  const int64_t per_row = (p.l + kBlock - 1) / kBlock;
  const int64_t blocks = p.n * per_row;
  // Below ~64k entries a thread costs more than it saves.
  const int64_t useful = std::max<int64_t>(1, blocks * kBlock * p.c / 65536);
  threads = static_cast<int>(std::max<int64_t>(
      1, std::min<int64_t>({threads, useful, blocks})));
  std::vector<double> acc(threads * (1 + kMaxGroups), 0.0);
  std::vector<std::exception_ptr> errors(threads);
  auto work = [&](int i) {
    try {
      const int64_t first = blocks * i / threads;
      const int64_t last = blocks * (i + 1) / threads;
      double* a = acc.data() + i * (1 + kMaxGroups);
      switch (p.groups) {
        case 1: run_blocks<1>(p, first, last, a); break;
        case 2: run_blocks<2>(p, first, last, a); break;
        case 3: run_blocks<3>(p, first, last, a); break;
        default: run_blocks<4>(p, first, last, a); break;
      }
    } catch (...) {
      errors[i] = std::current_exception();
    }
  };
  std::vector<std::thread> pool;
  try {
    pool.reserve(threads - 1);
    for (int i = 1; i < threads; ++i) pool.emplace_back(work, i);
  } catch (...) {
    for (auto& th : pool) th.join();
    throw;
  }
  work(0);
  for (auto& th : pool) th.join();
  for (const auto& error : errors)
    if (error) std::rethrow_exception(error);
  // Fixed order: the same thread count gives the same bits.
  for (int i = 0; i < threads; ++i)
    for (int g = 0; g <= p.groups; ++g)
      totals[g] += acc[i * (1 + kMaxGroups) + g];
}

PyObject* py_forward(PyObject*, PyObject* args) {
  unsigned long long student, teacher, grad, valid, labels, ids;
  long long n, c, l;
  int mode, k, groups, threads;
  float inv_t, w0, fwd, rev, grad_scale;
  PyObject *weights, *active;
  if (!PyArg_ParseTuple(args, "KKKKKKLLLiiiffffOOfi", &student, &teacher,
                        &grad, &valid, &labels, &ids, &n, &c, &l, &mode, &k,
                        &groups, &inv_t, &w0, &fwd, &rev, &weights, &active,
                        &grad_scale, &threads))
    return nullptr;
  if (groups < 1 || groups > kMaxGroups || mode < kWhole || mode > kGroupIds ||
      n < 1 || c < 2 || l < 1 ||
      ((mode == kTopK || mode == kBottomK || mode == kTopK3) &&
       (k < 1 || k >= c))) {
    PyErr_SetString(PyExc_ValueError, "decoupled_kl kernel: bad arguments");
    return nullptr;
  }
  Params p{};
  p.student = reinterpret_cast<const float*>(student);
  p.teacher = reinterpret_cast<const float*>(teacher);
  p.grad = reinterpret_cast<float*>(grad);
  p.valid = reinterpret_cast<const uint8_t*>(valid);
  p.labels = reinterpret_cast<const int64_t*>(labels);
  p.ids = reinterpret_cast<const uint8_t*>(ids);
  p.n = n; p.c = c; p.l = l;
  p.mode = mode; p.k = k; p.groups = groups;
  p.inv_t = inv_t; p.w0 = w0; p.fwd = fwd; p.rev = rev;
  p.grad_scale = grad_scale;
  // C terms below FLT_MIN (counted as 0) stay below 1e-7 of a kept sum.
  p.tiny = static_cast<float>(std::max<double>(
      kTiny, static_cast<double>(c) * std::numeric_limits<float>::min() * 1e7));
  for (int g = 0; g < groups; ++g) {
    PyObject* wo = PySequence_GetItem(weights, g);
    PyObject* ao = PySequence_GetItem(active, g);
    if (wo == nullptr || ao == nullptr) {
      Py_XDECREF(wo); Py_XDECREF(ao);
      return nullptr;
    }
    const double wg = PyFloat_AsDouble(wo), ag = PyFloat_AsDouble(ao);
    Py_DECREF(wo); Py_DECREF(ao);
    if (PyErr_Occurred()) return nullptr;
    p.wf[g] = static_cast<float>(fwd * wg);
    p.wr[g] = static_cast<float>(rev * wg);
    p.active[g] = static_cast<float>(ag);
  }
  double totals[1 + kMaxGroups] = {0};
  // No exception may cross into CPython (it would abort the interpreter):
  // caught here, turned into a Python exception once the GIL is back.
  PyObject* error_type = nullptr;
  const char* error_what = "";
  std::string error_message;
  Py_BEGIN_ALLOW_THREADS
  try {
    run(p, std::max(threads, 1), totals);
  } catch (const std::bad_alloc&) {
    error_type = PyExc_MemoryError;
    error_what = "out of memory for the scratch buffers";
  } catch (const std::exception& exc) {
    error_type = PyExc_RuntimeError;
    try {
      error_message = exc.what();
    } catch (...) {
    }
    error_what = error_message.c_str();
  } catch (...) {
    error_type = PyExc_RuntimeError;
    error_what = "unknown C++ exception";
  }
  Py_END_ALLOW_THREADS
  if (error_type != nullptr) {
    PyErr_Format(error_type, "decoupled_kl kernel: %s", error_what);
    return nullptr;
  }
  PyObject* out = PyTuple_New(1 + groups);
  if (out == nullptr) return nullptr;
  for (int g = 0; g <= groups; ++g) {
    PyObject* value = PyFloat_FromDouble(totals[g]);
    if (value == nullptr) {
      Py_DECREF(out);
      return nullptr;
    }
    PyTuple_SET_ITEM(out, g, value);
  }
  return out;
}

PyMethodDef kMethods[] = {
    {"forward", py_forward, METH_VARARGS,
     "forward(student, teacher, grad, valid, labels, ids, N, C, L, mode, k, "
     "groups, inv_t, w0, fwd, rev, weights, active, grad_scale, threads) -> "
     "row sums (high, D_0, .., D_{G-1}); writes the gradient if grad != 0."},
    {nullptr, nullptr, 0, nullptr}};

PyModuleDef kModule = {PyModuleDef_HEAD_INIT, "_decoupled_kl_cpu",
                       "Fused CPU decoupled-KL kernel (see decoupled_kl.cpp).",
                       -1, kMethods};

}  // namespace
}  // namespace mmgdkd_native

PyMODINIT_FUNC PyInit__decoupled_kl_cpu(void) {
  using mmgdkd_native::kMaxGroups;
  using mmgdkd_native::kModule;
  using mmgdkd_native::kVersion;
  PyObject* m = PyModule_Create(&kModule);
  if (m == nullptr) return nullptr;
  PyModule_AddIntConstant(m, "VERSION", kVersion);
  PyModule_AddIntConstant(m, "MAX_GROUPS", kMaxGroups);
  PyObject* modes = Py_BuildValue("(ssssss)", "whole", "label", "topk",
                                  "bottomk", "topk3", "group_ids");
  if (modes == nullptr || PyModule_AddObject(m, "MODES", modes) < 0) {
    Py_XDECREF(modes);
    Py_DECREF(m);
    return nullptr;
  }
  return m;
}
