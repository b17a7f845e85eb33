# Copyright (c) mmgdkd contributors. All rights reserved.
"""Statistics of a teacher's softened predictive distribution.

GDKD splits the classes of every row (a sample, or a pixel in
segmentation) into the teacher's top-k and the rest (docs/losses.md, GDKDLoss).
How much probability the top-k classes hold, and how that varies between
rows and classes, decides which ``k`` makes sense and how strongly the
"other" classes are weighted. This module turns teacher logits ``(R, C)``
(one row per sample/pixel) and their labels into those numbers:

- the top-1 probability histogram;
- the cumulative top-k mass for k = 1..C (mean and percentiles over rows);
- the per-row adaptive k of the authors' ratio rule
  (:func:`mmgdkd.models.losses.functional.adaptive_k`);
- per ground-truth class: rows, teacher accuracy, mean top-1 probability,
  mean top-k mass, and a per-class k by the mass rule and by the ratio rule
  on the class's mean prediction (the spec's per-class k);
- a suggested k: the smallest k whose mean top-k mass reaches a threshold.

Probabilities are ``softmax(logits / T)``. Everything here is computed from
the rows given; :class:`RowReservoir` draws a uniform random subset of a
stream of rows so that a whole data set fits in memory.
"""
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from mmgdkd.models.losses.functional import adaptive_k

#: Percentiles of the cumulative top-k mass reported per k.
PERCENTILES = (10, 25, 50, 75, 90)
#: Mass thresholds for which the smallest k is always reported.
MASS_THRESHOLDS = (0.8, 0.9, 0.95, 0.99)
#: Top-1 probability thresholds for "fraction of rows above".
TOP1_THRESHOLDS = (0.5, 0.9, 0.99)
# A mean mass this close below a threshold counts as reaching it (fp32 sums
# of probabilities that are 1 in exact arithmetic).
_MASS_TOL = 1e-6
# Rows processed at once where a full (R, C) temporary would be large.
_CHUNK = 1 << 16


# ---------------------------------------------------------------------------
# Rows
# ---------------------------------------------------------------------------
def seg_rows(logits: Tensor,
             labels: Tensor,
             ignore_index: Optional[int] = 255) -> Tuple[Tensor, Tensor]:
    """Pixel rows of a segmentation logit map and their labels.

    The labels are nearest-resized to the logits' size (as the distillation
    losses do, docs/losses.md) and pixels labelled ``ignore_index`` are
    dropped.

    Args:
        logits (Tensor): ``(N, C, h, w)`` logits (e.g. decode-head output).
        labels (Tensor): ``(N, H, W)`` or ``(N, 1, H, W)`` integer labels at
            any size (usually the input size).
        ignore_index (int, optional): Label of pixels to exclude.

    Returns:
        tuple[Tensor, Tensor]: float32 rows ``(R, C)`` and int64 labels
        ``(R,)`` of the valid pixels, in ``(n, y, x)`` order.
    """
    if logits.dim() != 4:
        raise ValueError(f'segmentation logits must be (N, C, h, w), got '
                         f'shape {tuple(logits.shape)}')
    if labels.dim() == 4 and labels.shape[1] == 1:
        labels = labels[:, 0]
    if labels.dim() != 3 or labels.shape[0] != logits.shape[0]:
        raise ValueError(f'labels must be (N, H, W) with N={logits.shape[0]}, '
                         f'got shape {tuple(labels.shape)}')
    n, c, h, w = logits.shape
    if tuple(labels.shape[1:]) != (h, w):
        labels = F.interpolate(
            labels[:, None].float(), size=(h, w), mode='nearest')[:, 0]
    labels = labels.reshape(-1).long()
    rows = logits.detach().float().permute(0, 2, 3, 1).reshape(-1, c)
    if ignore_index is not None:
        keep = labels != ignore_index
        rows, labels = rows[keep], labels[keep]
    return rows, labels


class RowReservoir:
    """A uniform random sample, without replacement, of a stream of rows.

    Every row gets a random key (seeded); the ``max_rows`` rows with the
    smallest keys are kept. So the kept set is a uniform sample of all rows
    seen, whatever the batch sizes, and the same stream with the same seed
    gives the same sample (kept in arrival order).

    Rows are buffered and reduced to ``max_rows`` only when the buffer
    exceeds twice that, and once the sample is full only rows with a key
    below the largest kept one are buffered at all: the cost is linear in
    the stream, whatever ``max_rows * C``.

    Args:
        max_rows (int): Capacity (``>= 1``).
        seed (int): Seed of the keys.
    """

    def __init__(self, max_rows: int, seed: int = 0) -> None:
        if max_rows < 1:
            raise ValueError(f'max_rows must be >= 1, got {max_rows}')
        self.max_rows = int(max_rows)
        self.generator = torch.Generator().manual_seed(int(seed))
        self.seen = 0
        self.num_classes: Optional[int] = None
        self._chunks: List[Tuple[Tensor, Tensor, Tensor]] = []
        self._buffered = 0
        # Largest kept key once the sample is full: larger keys never enter.
        self._threshold: Optional[float] = None

    def add(self, logits: Tensor, labels: Optional[Tensor] = None) -> None:
        """Offer rows ``(R, C)`` with labels ``(R,)`` (``None``: unknown,
        stored as -1)."""
        if logits.dim() != 2:
            raise ValueError(f'rows must be (R, C), got shape '
                             f'{tuple(logits.shape)}')
        num = logits.shape[0]
        if labels is None:
            labels = torch.full((num, ), -1, dtype=torch.long)
        if tuple(labels.shape) != (num, ):
            raise ValueError(f'labels must be ({num},), got shape '
                             f'{tuple(labels.shape)}')
        if self.num_classes is None:
            self.num_classes = logits.shape[1]
        elif logits.shape[1] != self.num_classes:
            raise ValueError(f'rows with {logits.shape[1]} classes added to '
                             f'a reservoir of {self.num_classes}')
        self.seen += num
        keys = torch.rand(num, generator=self.generator, dtype=torch.float64)
        logits = logits.detach().float().cpu()
        labels = labels.detach().long().cpu()
        if self._threshold is not None:
            cand = keys < self._threshold
            keys, logits, labels = keys[cand], logits[cand], labels[cand]
        if keys.numel() == 0:
            return
        self._chunks.append((keys, logits, labels))
        self._buffered += keys.numel()
        if self._buffered > 2 * self.max_rows:
            self._reduce()

    def _reduce(self) -> Tuple[Tensor, Tensor, Tensor]:
        """Merge the buffer into one chunk of at most ``max_rows`` rows."""
        if not self._chunks:
            raise ValueError('the reservoir is empty: no rows were added')
        if len(self._chunks) > 1 or self._buffered > self.max_rows:
            keys, logits, labels = (torch.cat(parts)
                                    for parts in zip(*self._chunks))
            if keys.numel() > self.max_rows:
                keep = keys.topk(self.max_rows, largest=False).indices
                keep = keep.sort().values  # arrival order
                keys, logits, labels = keys[keep], logits[keep], labels[keep]
                self._threshold = float(keys.max())
            self._chunks = [(keys, logits, labels)]
            self._buffered = keys.numel()
        return self._chunks[0]

    def __len__(self) -> int:
        return min(self._buffered, self.max_rows)

    @property
    def logits(self) -> Tensor:
        """The kept rows ``(R, C)`` (float32)."""
        return self._reduce()[1]

    @property
    def labels(self) -> Tensor:
        """Labels ``(R,)`` of the kept rows (-1 where unknown)."""
        return self._reduce()[2]


# ---------------------------------------------------------------------------
# Statistics
# ---------------------------------------------------------------------------
def smallest_k_reaching(mean_mass: Sequence[float], threshold: float) -> int:
    """Smallest ``k`` (1-based) with ``mean_mass[k-1] >= threshold``.

    ``mean_mass`` is the mean cumulative top-k mass for k = 1..C; the last
    entry is 1, so ``C`` is returned when no smaller k qualifies (callers
    cap it at ``C - 1``, GDKD's largest valid k).
    """
    mass = np.asarray(mean_mass, dtype=np.float64)
    hits = np.nonzero(mass >= threshold - _MASS_TOL)[0]
    return int(hits[0]) + 1 if hits.size else int(mass.size)


def _rule_text(threshold: float, temperature: float) -> str:
    return (f'the smallest k whose mean top-k mass (teacher probabilities '
            f'softmax(logits / T), T={temperature:g}) reaches '
            f'{threshold:g} (--mass-threshold), capped at C-1')


def _ratio_rule_text(ratio: float, temperature: float, max_k: int) -> str:
    return (f'per row: sort softmax(logits / T) ascending, T={temperature:g}; '
            f'the first position j with p_(j) >= {ratio:g} * mean(p_(0..j)) '
            f'starts the top group, k = C - j (1 if none), capped at '
            f'{max_k} (GDKDLoss strategy=\'adaptive\', docs/losses.md)')


class _Pass(NamedTuple):
    cum: Tensor  # (R, C) descending cumulative mass, float32
    argmax: Tensor  # (R,)
    # per-class float64 sums over labelled rows (None without labels)
    count: Optional[Tensor]  # (C,)
    top1: Optional[Tensor]  # (C,)
    mass: Optional[Tensor]  # (C, C) cumulative mass
    probs: Optional[Tensor]  # (C, C) probabilities (mean prediction)
    correct: Optional[Tensor]  # (C,)


def _one_pass(logits: Tensor, labels: Optional[Tensor],
              temperature: float) -> _Pass:
    """Cumulative masses and per-class sums, in row chunks (temporaries
    stay small for large C)."""
    num_rows, num_classes = logits.shape
    cum = torch.empty(num_rows, num_classes)
    argmax = torch.empty(num_rows, dtype=torch.long)
    sums = None
    if labels is not None:
        sums = dict(
            count=torch.zeros(num_classes, dtype=torch.float64),
            top1=torch.zeros(num_classes, dtype=torch.float64),
            mass=torch.zeros(num_classes, num_classes, dtype=torch.float64),
            probs=torch.zeros(num_classes, num_classes, dtype=torch.float64),
            correct=torch.zeros(num_classes, dtype=torch.float64))
    for start in range(0, num_rows, _CHUNK):
        end = min(start + _CHUNK, num_rows)
        z = logits[start:end]
        p = torch.softmax(z / temperature, dim=1)
        c = cum[start:end]
        torch.cumsum(p.sort(dim=1, descending=True).values, 1, out=c)
        c.clamp_(0.0, 1.0)
        argmax[start:end] = z.argmax(1)
        if sums is None:
            continue
        lab = labels[start:end]
        known = (lab >= 0) & (lab < num_classes)
        lab = lab[known]
        sums['count'].index_add_(0, lab, torch.ones_like(lab,
                                                         dtype=torch.float64))
        sums['top1'].index_add_(0, lab, c[known, 0].double())
        sums['mass'].index_add_(0, lab, c[known].double())
        sums['probs'].index_add_(0, lab, p[known].double())
        sums['correct'].index_add_(
            0, lab, (argmax[start:end][known] == lab).double())
    if sums is None:
        return _Pass(cum, argmax, None, None, None, None, None)
    return _Pass(cum, argmax, **sums)


def _row_adaptive_k(logits: Tensor, temperature: float, ratio: float,
                    max_k: int) -> Tensor:
    """Per-row adaptive k ``(R,)`` via :func:`adaptive_k`, rows as
    ``(R, C, 1)`` (contiguous along the classes, faster to sort)."""
    ks = []
    for start in range(0, logits.shape[0], _CHUNK):
        z = logits[start:start + _CHUNK].unsqueeze(-1)  # R, C, 1
        k, _ = adaptive_k(z, temperature, ratio, max_k)
        ks.append(k.view(-1))
    return torch.cat(ks)


def _percentiles(values: np.ndarray) -> np.ndarray:
    """``PERCENTILES`` over rows of ``(R, C)``, chunked over columns."""
    out = np.empty((len(PERCENTILES), values.shape[1]), dtype=np.float64)
    for start in range(0, values.shape[1], 64):
        out[:, start:start + 64] = np.percentile(
            values[:, start:start + 64], PERCENTILES, axis=0)
    return out


def _floats(values) -> List[float]:
    return [float(v) for v in np.asarray(values).reshape(-1)]


def distribution_stats(logits: Tensor,
                       labels: Optional[Tensor] = None,
                       temperature: float = 1.0,
                       ratio: float = 2.0,
                       max_k: Optional[int] = None,
                       mass_threshold: float = 0.95,
                       num_bins: int = 20,
                       class_names: Optional[Sequence[str]] = None,
                       k_ref: Optional[int] = None,
                       k_ref_source: Optional[str] = None,
                       rows_seen: Optional[int] = None) -> Dict:
    """Statistics of the teacher distribution over rows (JSON-ready).

    Args:
        logits (Tensor): Teacher logits ``(R, C)``, one row per sample or
            pixel (ignored pixels already removed).
        labels (Tensor, optional): Ground truth ``(R,)``; rows whose label
            is not in ``[0, C)`` (or no labels) count for the distribution
            but not for the accuracy and the per-class statistics.
        temperature (float): ``T`` of ``softmax(logits / T)``.
        ratio (float): Jump ratio of the adaptive-k rule.
        max_k (int, optional): Cap of the adaptive k; ``None`` is ``C - 1``
            (as ``GDKDLoss``).
        mass_threshold (float): Threshold of the suggested-k rule.
        num_bins (int): Bins of the top-1 histogram over ``[0, 1]``.
        class_names (Sequence[str], optional): ``C`` names.
        k_ref (int, optional): The k at which per-class top-k mass and the
            top/other mass split are reported; ``None`` uses the suggested k.
        k_ref_source (str, optional): Where ``k_ref`` comes from (reported).
        rows_seen (int, optional): How many rows the sample was drawn from.

    Returns:
        dict: See the keys in the code and the README (``stats.json``).
    """
    if logits.dim() != 2:
        raise ValueError(f'logits must be (R, C), got shape '
                         f'{tuple(logits.shape)}')
    num_rows, num_classes = logits.shape
    if num_rows == 0:
        raise ValueError('no rows to analyse (every label ignored?)')
    if num_classes < 2:
        raise ValueError(f'need at least 2 classes, got {num_classes}')
    if temperature <= 0:
        raise ValueError(f'temperature must be > 0, got {temperature}')
    if not 0 < mass_threshold <= 1:
        raise ValueError(f'mass_threshold must be in (0, 1], got '
                         f'{mass_threshold}')
    max_k = num_classes - 1 if max_k is None else int(max_k)
    if not 1 <= max_k < num_classes:
        raise ValueError(f'max_k must be in [1, C-1] = [1, '
                         f'{num_classes - 1}], got {max_k}')
    if class_names is None or len(class_names) != num_classes:
        class_names = [f'class_{i}' for i in range(num_classes)]
    class_names = [str(name) for name in class_names]
    logits = logits.detach().float().cpu()

    if labels is not None:
        labels = labels.detach().long().cpu().view(-1)
        if labels.numel() != num_rows:
            raise ValueError(f'{labels.numel()} labels for {num_rows} rows')
    sums = _one_pass(logits, labels, temperature)
    cum = sums.cum
    top1 = cum[:, 0]
    mean_mass = cum.mean(0, dtype=torch.float64).numpy()
    pct = _percentiles(cum.numpy())

    # -- top-1 histogram ---------------------------------------------------
    edges = np.linspace(0.0, 1.0, num_bins + 1)
    top1_np = top1.double().numpy()
    counts, _ = np.histogram(top1_np, bins=edges)

    # -- suggested k -------------------------------------------------------
    def capped(k):
        return min(k, num_classes - 1)

    k_suggested = capped(smallest_k_reaching(mean_mass, mass_threshold))
    k_at_mass = {
        f'{t:g}': capped(smallest_k_reaching(mean_mass, t))
        for t in sorted(set(MASS_THRESHOLDS) | {mass_threshold})
    }
    if k_ref is None:
        k_ref, k_ref_source = k_suggested, 'suggested k'
    if not 1 <= k_ref < num_classes:
        raise ValueError(f'k_ref must be in [1, C-1] = [1, '
                         f'{num_classes - 1}], got {k_ref}')

    # -- adaptive k ----------------------------------------------------------
    row_k = _row_adaptive_k(logits, temperature, ratio, max_k)
    k_counts = torch.bincount(row_k, minlength=max_k + 1)[1:max_k + 1]

    # -- labels: accuracy and per class ------------------------------------
    per_class = []
    accuracy = None
    rows_labelled = 0
    if labels is not None:
        n_c = sums.count
        rows_labelled = int(n_c.sum())
        if rows_labelled:
            accuracy = float(sums.correct.sum() / rows_labelled)
        sum_top1, sum_cum = sums.top1, sums.mass
        sum_probs, sum_correct = sums.probs, sums.correct
        present = n_c > 0
        k_ratio = torch.zeros(num_classes, dtype=torch.long)
        if bool(present.any()):
            mean_pred = sum_probs[present] / n_c[present, None]
            # The mean prediction is already softened: T = 1 on its log.
            z = mean_pred.clamp_min(1e-300).log().t().unsqueeze(0)
            k_ratio[present] = adaptive_k(z, 1.0, ratio, max_k)[0].view(-1)
        for c in range(num_classes):
            n = int(n_c[c])
            if n == 0:
                per_class.append(dict(
                    index=c, name=class_names[c], rows=0, accuracy=None,
                    mean_top1=None, mean_topk_mass=None, k_mass=None,
                    k_ratio=None))
                continue
            class_mass = (sum_cum[c] / n).numpy()
            per_class.append(dict(
                index=c,
                name=class_names[c],
                rows=n,
                accuracy=float(sum_correct[c] / n),
                mean_top1=float(sum_top1[c] / n),
                mean_topk_mass=float(class_mass[k_ref - 1]),
                k_mass=capped(smallest_k_reaching(class_mass,
                                                  mass_threshold)),
                k_ratio=int(k_ratio[c])))

    return dict(
        num_classes=num_classes,
        class_names=class_names,
        rows=num_rows,
        rows_seen=int(rows_seen if rows_seen is not None else num_rows),
        rows_labelled=rows_labelled,
        temperature=float(temperature),
        accuracy=accuracy,
        top1=dict(
            bin_edges=_floats(edges),
            counts=[int(c) for c in counts],
            mean=float(top1_np.mean()),
            median=float(np.median(top1_np)),
            fraction_above={
                f'{t:g}': float((top1_np > t).mean())
                for t in TOP1_THRESHOLDS
            }),
        topk_mass=dict(
            k=list(range(1, num_classes + 1)),
            mean=_floats(mean_mass),
            **{f'p{q}': _floats(pct[i]) for i, q in enumerate(PERCENTILES)}),
        adaptive_k=dict(
            ratio=float(ratio),
            temperature=float(temperature),
            max_k=max_k,
            k=list(range(1, max_k + 1)),
            counts=[int(c) for c in k_counts],
            mean=float(row_k.double().mean()),
            rule=_ratio_rule_text(ratio, temperature, max_k)),
        suggested_k=dict(
            k=k_suggested,
            mass_threshold=float(mass_threshold),
            mean_mass=float(mean_mass[k_suggested - 1]),
            rule=_rule_text(mass_threshold, temperature)),
        k_at_mass=k_at_mass,
        k_ref=dict(
            k=int(k_ref),
            source=k_ref_source or 'given',
            mean_top_mass=float(mean_mass[k_ref - 1]),
            mean_other_mass=float(1.0 - mean_mass[k_ref - 1])),
        per_class=per_class,
        per_class_rules=dict(
            k_mass='the suggested-k rule on the mean top-k mass of the rows '
            'of the class',
            k_ratio='the adaptive-k ratio rule on the mean softened '
            'prediction of the rows of the class (GDKDLoss '
            'strategy="adaptive", per-class k)'),
    )


def format_summary(stats: Dict, max_classes: int = 30) -> str:
    """A short human-readable summary of :func:`distribution_stats`."""
    c = stats['num_classes']
    lines = []
    seen = stats['rows_seen']
    kind = stats.get('meta', {}).get('row_kind', 'rows')
    sample = (f'{stats["rows"]} {kind}' if seen == stats['rows'] else
              f'{stats["rows"]} {kind} sampled from {seen}')
    lines.append(f'Teacher distribution: {sample}, {c} classes, '
                 f'T={stats["temperature"]:g}')
    if stats['accuracy'] is not None:
        lines.append(f'  teacher accuracy on these rows: '
                     f'{100 * stats["accuracy"]:.2f}%')
    top1 = stats['top1']
    above = ', '.join(f'{100 * v:.1f}% > {t}'
                      for t, v in top1['fraction_above'].items())
    lines.append(f'  top-1 probability: mean {top1["mean"]:.3f}, median '
                 f'{top1["median"]:.3f} ({above})')
    mean = stats['topk_mass']['mean']
    shown = sorted({k for k in (1, 2, 3, 5, 10, 20) if k <= c}
                   | {stats['suggested_k']['k'], stats['k_ref']['k']})
    lines.append('  mean top-k mass: ' + ' | '.join(
        f'k={k} {mean[k - 1]:.4f}' for k in shown))
    sug = stats['suggested_k']
    lines.append(f'  suggested k = {sug["k"]} (mean mass '
                 f'{sug["mean_mass"]:.4f}): {sug["rule"]}')
    lines.append('  smallest k by threshold: ' + ', '.join(
        f'{t} -> {k}' for t, k in stats['k_at_mass'].items()))
    ref = stats['k_ref']
    lines.append(f'  at k={ref["k"]} ({ref["source"]}): top group holds '
                 f'{ref["mean_top_mass"]:.4f} of the mass on average, the '
                 f'other classes {ref["mean_other_mass"]:.4f} (KD\'s '
                 'implicit weight on their within-group term; GDKD uses w2)')
    ak = stats['adaptive_k']
    total = max(sum(ak['counts']), 1)
    common = sorted(sorted(zip(ak['counts'], ak['k']), reverse=True)[:6],
                    key=lambda item: item[1])
    dist = ', '.join(f'k={k}: {100 * n / total:.1f}%' for n, k in common
                     if n)
    lines.append(f'  adaptive k (ratio {ak["ratio"]:g}, T='
                 f'{ak["temperature"]:g}): mean {ak["mean"]:.2f}; most '
                 f'common {dist}')
    classes = [p for p in stats['per_class'] if p['rows']]
    if classes:
        more = (f' (first {max_classes} of {len(classes)})'
                if len(classes) > max_classes else '')
        lines.append(f'  per class{more}: rows, teacher accuracy, mean '
                     'top-1, k by the mass rule / the ratio rule')
        for p in classes[:max_classes]:
            lines.append(f'    {p["name"]:<16} {p["rows"]:>8} '
                         f'{100 * p["accuracy"]:6.1f}% '
                         f'{p["mean_top1"]:.3f}  k={p["k_mass"]} / '
                         f'{p["k_ratio"]}')
    return '\n'.join(lines)
