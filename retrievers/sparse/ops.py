"""The tensor operations of SPLADE and PROSPER, as small pure functions so each can be checked by hand.

Shapes: ``logits`` (batch, length, vocab), ``hidden`` (batch, length, dim), ``mask`` (batch, length) with 1 for
real tokens. Choices where the paper is ambiguous are documented here and exposed as options by the models:

- LRN: ``W = w + I * (max(w') - w')`` with ``max`` over the vocabulary of each example's ``w'`` (one scalar per
  example), so every literal term is lifted by the gap between the strongest residual and its own residual
  ("max" mode); ``W = w + I * w'`` is the LRN-add ablation. ``I`` excludes special tokens (padding, CLS/SEP, EOS).
- LFW: conditional top-k, ``TopK(W, k)`` only when ``||W||_0 > k``; ties at the k-th value keep the lower term ids
  (``torch.topk`` order), so the kept set is always exactly k.
- Normalisation: the paper's default L2-normalises the (windowed) query only; the appendix D.2 variants are
  ``both-l2`` (cosine), ``none`` (dot), ``query-l1`` and ``doc-l2``.
- FLOPS regulariser on the *basic* representation w: ``sum_j (mean_i w_ij)^2`` over the batch.
"""

from __future__ import annotations

import torch

NORMALISATIONS = ("query-l2", "both-l2", "none", "query-l1", "doc-l2")


def log_saturation(x: torch.Tensor) -> torch.Tensor:
    """log(1 + ReLU(x)): SPLADE's activation, which keeps weights non-negative and damps large logits."""
    return torch.log1p(torch.relu(x))


def max_pool(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Max over the positions where ``mask`` is 1 (SPLADE-max). ``values`` must be >= 0 (padding becomes 0)."""
    return (values * mask.unsqueeze(-1).to(values.dtype)).amax(dim=1)


def masked_max(logits_of, hidden: torch.Tensor, mask: torch.Tensor, chunk_positions: int | None = None
               ) -> torch.Tensor:
    """Max over the real positions of ``logits_of(hidden)`` (fp32; ``-inf`` for a row without real positions).

    With ``chunk_positions`` the logits are computed that many positions at a time and reduced at once, so a
    (batch, length, vocab) tensor never exists - for a 151,936-term vocabulary, 64 positions of 64 texts would be
    2.5 GB. Without it (training: the graph needs the logits anyway) one pass.
    """
    length = hidden.shape[1]
    step = length if chunk_positions is None else max(1, chunk_positions)
    best = None
    for start in range(0, length, step):
        logits = logits_of(hidden[:, start:start + step]).float()
        real = mask[:, start:start + step, None].bool()
        part = logits.masked_fill(~real, float("-inf")).amax(dim=1)
        best = part if best is None else torch.maximum(best, part)
        del logits
    return best


def last_positions(mask: torch.Tensor) -> torch.Tensor:
    """Index of the last real token of each row, for right *or* left padding."""
    length = mask.shape[1]
    flipped_first = torch.argmax(mask.flip(dims=[1]).to(torch.int64), dim=1)
    return length - 1 - flipped_first


def last_token_pool(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The vector at each row's last real token (a causal LM has read the whole input only there)."""
    rows = torch.arange(values.shape[0], device=values.device)
    return values[rows, last_positions(mask)]


def literal_indicator(input_ids: torch.Tensor, mask: torch.Tensor, vocab_size: int,
                      special_ids: list[int] | tuple[int, ...] = ()) -> torch.Tensor:
    """I: (batch, vocab) with 1 at the input's own token ids (its literal terms), special tokens excluded."""
    keep = mask.bool()
    for special in special_ids:
        keep &= input_ids != special
    out = torch.zeros(input_ids.shape[0], vocab_size, device=input_ids.device)
    # scatter_add: positions left out add 0 (a plain scatter would write their 0 over a literal term at column 0)
    out.scatter_add_(1, torch.where(keep, input_ids, torch.zeros_like(input_ids)), keep.to(out.dtype))
    return out.clamp_(max=1.0)


def literal_residual(w: torch.Tensor, w_prime: torch.Tensor, indicator: torch.Tensor, mode: str = "max"
                     ) -> torch.Tensor:
    """The Literal Residual Network's combination of the basic weights ``w`` and the residual weights ``w'``.

    ``max`` (PROSPER): ``w + I*(max(w') - w')`` is non-negative by construction. ``add`` (the ablation):
    ``w + I*w'`` can go negative since ``w' = FC(...)`` is unbounded; the paper does not say how, so the sum is passed
    through ReLU (an inverted index stores non-negative impacts; a negative literal weight would mean "penalise
    this word", which no sparse retriever of the paper does).
    """
    if mode == "max":
        return w + indicator * (w_prime.amax(dim=1, keepdim=True) - w_prime)
    if mode == "add":
        return torch.relu(w + indicator * w_prime)
    if mode == "none":
        return w
    raise ValueError(f"unknown LRN mode {mode!r}: max, add or none")


def conditional_topk(weights: torch.Tensor, k: int | None) -> torch.Tensor:
    """Lexical Focusing Window: keep the k largest weights of rows with more than k non-zeros; others unchanged."""
    if k is None or k <= 0 or k >= weights.shape[1]:
        return weights
    values, indices = torch.topk(weights, k, dim=1)
    windowed = torch.zeros_like(weights).scatter(1, indices, values)
    over = (weights > 0).sum(dim=1, keepdim=True) > k
    return torch.where(over, windowed, weights)


def dynamic_window(active_counts: torch.Tensor, windows: tuple[int, ...], current: int, threshold: float = 0.9) -> int:
    """Dynamic LFW, as the paper states it: once more than ``threshold`` of the rows are under the *current* window
    (their active terms, counted before windowing, already fit it), move to the next smaller window."""
    idx = windows.index(current)
    if idx + 1 < len(windows) and float((active_counts <= current).float().mean()) > threshold:
        return windows[idx + 1]
    return current


def normalise(q: torch.Tensor, d: torch.Tensor, mode: str = "query-l2") -> tuple[torch.Tensor, torch.Tensor]:
    """Apply one of the normalisation variants (see module docstring) to query and document representations."""
    if mode not in NORMALISATIONS:
        raise ValueError(f"unknown normalisation {mode!r}: {NORMALISATIONS}")
    l2 = torch.nn.functional.normalize
    if mode == "query-l2":
        return l2(q, p=2, dim=-1), d
    if mode == "both-l2":
        return l2(q, p=2, dim=-1), l2(d, p=2, dim=-1)
    if mode == "query-l1":
        return l2(q, p=1, dim=-1), d
    if mode == "doc-l2":
        return q, l2(d, p=2, dim=-1)
    return q, d


def flops(w: torch.Tensor) -> torch.Tensor:
    """FLOPS regulariser: sum over the vocabulary of the squared mean weight over the batch."""
    return (w.mean(dim=0) ** 2).sum()


def echo_inputs(input_ids: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Echo embedding: the input twice (each copy right-padded in place); returns ids, attention mask, and the mask of
    the *second* copy, from which a causal model's representation is read (it has seen the whole text by then)."""
    ids = torch.cat([input_ids, input_ids], dim=1)
    attention = torch.cat([mask, mask], dim=1)
    second = torch.cat([torch.zeros_like(mask), mask], dim=1)
    return ids, attention, second


def bidirectional_mask(mask: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """A 4-D additive attention mask with no causal triangle: every real token attends to every real token."""
    allowed = mask[:, None, None, :].to(torch.bool).expand(-1, 1, mask.shape[1], -1)
    return torch.zeros(allowed.shape, dtype=dtype, device=mask.device).masked_fill(~allowed, torch.finfo(dtype).min)


def causal_mask(mask: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The usual causal 4-D additive mask (for comparison with :func:`bidirectional_mask`)."""
    length = mask.shape[1]
    tri = torch.tril(torch.ones(length, length, dtype=torch.bool, device=mask.device))
    allowed = tri[None, None] & mask[:, None, None, :].to(torch.bool)
    return torch.zeros(allowed.shape, dtype=dtype, device=mask.device).masked_fill(~allowed, torch.finfo(dtype).min)
