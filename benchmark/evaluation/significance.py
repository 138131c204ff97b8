"""``python -m benchmark compare``: paired significance tests between rows, over the same queries.

For every pair of rows (A, B) and metric: the mean per-query difference A - B with a 95% percentile-bootstrap interval
(queries resampled with replacement), and two two-sided paired p-values:

- a **randomization (sign-flip) test**: under the null hypothesis that A and B are exchangeable on each query, the
  sign of each per-query difference is a coin flip; p = (1 + #{draws with |mean| >= observed}) / (1 + draws), with
  a fixed seed so the same scores always give the same p (Smucker et al., CIKM 2007; ranx's Fisher randomization test
  computes the same quantity but reseeds per thread, so it is compared against, not used);
- a **paired t-test** (``scipy.stats.ttest_rel``; ranx's ``paired_student_t_test`` is the same call).

Both are Holm-corrected across the pairs of one metric (family-wise error at 5%). Per-query values come from the
committed per-query file beside each result, so a comparison needs no run file and no recomputation.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

DRAWS = 20_000
BOOTSTRAP = 10_000
SEED = 0
ALPHA = 0.05


def sign_flip_p(diffs: np.ndarray, draws: int = DRAWS, seed: int = SEED) -> float:
    """Two-sided randomization p-value of the mean of paired differences (random signs, fixed seed)."""
    diffs = np.asarray(diffs, dtype=np.float64)
    observed = abs(diffs.mean()) if diffs.size else 0.0
    rng = np.random.default_rng(seed)
    hits, done, block = 0, 0, max(1, 2_000_000 // max(1, diffs.size))
    while done < draws:
        n = min(block, draws - done)
        signs = rng.integers(0, 2, size=(n, diffs.size), dtype=np.int8) * 2 - 1
        means = np.abs(signs @ diffs) / max(1, diffs.size)
        hits += int(np.count_nonzero(means >= observed - 1e-12))
        done += n
    return (1 + hits) / (1 + draws)


def bootstrap_interval(diffs: np.ndarray, draws: int = BOOTSTRAP, seed: int = SEED, level: float = 0.95
                       ) -> tuple[float, float]:
    """Percentile-bootstrap interval of the mean paired difference (queries resampled with replacement)."""
    diffs = np.asarray(diffs, dtype=np.float64)
    if diffs.size == 0:
        return 0.0, 0.0
    rng = np.random.default_rng(seed)
    means = np.empty(draws)
    block = max(1, 2_000_000 // diffs.size)
    for start in range(0, draws, block):
        n = min(block, draws - start)
        means[start:start + n] = diffs[rng.integers(0, diffs.size, size=(n, diffs.size))].mean(axis=1)
    tail = (1 - level) / 2
    low, high = np.quantile(means, [tail, 1 - tail])
    return float(low), float(high)


def paired_t_p(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sided paired t-test p-value; 1.0 when the two are identical on every query (no variance, no difference)."""
    from scipy.stats import ttest_rel

    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.size < 2 or np.array_equal(a, b):
        return 1.0
    p = float(ttest_rel(a, b, alternative="two-sided").pvalue)
    return 0.0 if math.isnan(p) else p  # a constant non-zero difference: certain


def holm(pvalues: list[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values (step-down, monotone, capped at 1), in the input order."""
    order = sorted(range(len(pvalues)), key=pvalues.__getitem__)
    adjusted = [0.0] * len(pvalues)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(pvalues) - rank) * pvalues[i]))
        adjusted[i] = running
    return adjusted


@dataclass
class PairComparison:
    a: str
    b: str
    metric: str
    queries: int
    mean_a: float
    mean_b: float
    difference: float  # mean of A - B
    ci_low: float
    ci_high: float
    p_randomization: float
    p_ttest: float
    p_randomization_holm: float = 1.0
    p_ttest_holm: float = 1.0

    @property
    def significant(self) -> bool:
        """Significant at 5% after Holm's correction, by the randomization test."""
        return self.p_randomization_holm < ALPHA

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "significant": self.significant}


def aligned(scores: dict[str, dict[str, float]]) -> tuple[list[str], dict[str, np.ndarray]]:
    """The common queries (sorted) and each row's values on them; rows must cover the same queries."""
    names = list(scores)
    qids = sorted(scores[names[0]])
    for name in names[1:]:
        if set(scores[name]) != set(qids):
            raise ValueError(f"{names[0]} and {name} were evaluated on different queries "
                             f"({len(qids)} vs {len(scores[name])}): compare results of one dataset version")
    return qids, {name: np.array([scores[name][q] for q in qids]) for name in names}


def compare_rows(scores: dict[str, dict[str, float]], metric: str, pairs: list[tuple[str, str]] | None = None,
                 draws: int = DRAWS, seed: int = SEED) -> list[PairComparison]:
    """Every pair of rows (or the given ``pairs``) on one metric's per-query ``scores``, Holm-corrected together."""
    qids, values = aligned(scores)
    pairs = pairs if pairs is not None else list(itertools.combinations(scores, 2))
    out = []
    for a, b in pairs:
        diffs = values[a] - values[b]
        low, high = bootstrap_interval(diffs, seed=seed)
        out.append(PairComparison(a, b, metric, len(qids), float(values[a].mean()), float(values[b].mean()),
                                  float(diffs.mean()), low, high, sign_flip_p(diffs, draws, seed),
                                  paired_t_p(values[a], values[b])))
    for field, adjusted in (("p_randomization", holm([c.p_randomization for c in out])),
                            ("p_ttest", holm([c.p_ttest for c in out]))):
        for comparison, value in zip(out, adjusted, strict=True):
            setattr(comparison, f"{field}_holm", value)
    return out


def render(comparisons: list[PairComparison]) -> str:
    """A plain-text table: one line per pair, differences in points (x100)."""
    if not comparisons:
        return "(nothing to compare)"
    width = max(len(f"{c.a} - {c.b}") for c in comparisons)
    lines = [f"{comparisons[0].metric} over {comparisons[0].queries:,} queries (differences x100; p two-sided, "
             f"Holm-corrected over {len(comparisons)} pair(s); randomization: {DRAWS:,} sign flips, seed {SEED})",
             f"{'A - B':<{width}} {'A':>7} {'B':>7} {'diff':>7} {'95% CI':>17} {'p rand':>8} {'p t':>8}  significant"]
    for c in comparisons:
        ci = f"[{c.ci_low * 100:+.2f}, {c.ci_high * 100:+.2f}]"
        lines.append(f"{c.a + ' - ' + c.b:<{width}} {c.mean_a * 100:7.2f} {c.mean_b * 100:7.2f} "
                     f"{c.difference * 100:+7.2f} {ci:>17} {c.p_randomization_holm:8.4f} {c.p_ttest_holm:8.4f}  "
                     f"{'yes' if c.significant else 'no'}")
    return "\n".join(lines)
