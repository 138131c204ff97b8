"""How a trained retriever gets its backbone: pretrained weights or a scratch model, at which precision, with which
training preset - decided once, here, for every model family (sparse, dense, DeepCT, Doc2Query).

- **Weights** (:func:`pretrained_or_scratch`): ``retrievers.resources.hub.resolve_model`` looks for the real weights (a
  ``model_path``, the HF cache, the Hub, a packaged port). Without them a small scratch model of the same
  architecture is trained here - unless scratch models are refused: by the config (``allow_scratch: false``), or by
  the runner for a dataset comparable with the paper (:func:`refuse_scratch`), where a scratch model would stand in
  silently for the paper's setting. Then :class:`ScratchRefused` names the missing weights.
- **Precision** (:func:`precision_plan`): ``auto`` = fp32 weights with bf16 autocast on a CUDA GPU (fp32 master
  weights: AdamW updates stay exact while the matmuls run in bf16), plain fp32 on the CPU; ``bf16`` keeps the weights
  themselves in bf16 (memory, inference); ``fp32`` and ``bf16-autocast`` force the one or the other. Whatever the
  checkpoint's own dtype (Qwen2.5 ships bf16), weights load in the plan's dtype, so every head the retriever adds
  (LRN, DeepCT's regression head) matches the backbone; every tensor leaving a model is cast to fp32.
- **Training preset** (:func:`training_preset`): ``train`` is the scratch preset (a small model from random
  initialisation learns at a high rate); ``train_pretrained`` carries the paper's settings (lr 3e-5, linear warm-up
  over ~0.3 of 5 epochs, AdamW weight decay 0.1, batch 64 per device, best of 5 epochs on 500 held-out training
  queries). The preset follows the weights that loaded, and the result file records which one ran.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from retrievers.resources.hub import ResolvedModel, WeightsUnavailable, resolve_model

PRECISIONS = ("auto", "fp32", "bf16-autocast", "bf16")
_refusal: contextvars.ContextVar[str | None] = contextvars.ContextVar("scratch_refusal", default=None)


class ScratchRefused(RuntimeError):
    """Pretrained weights are required here and were not found."""


@contextlib.contextmanager
def refuse_scratch(reason: str | None) -> Iterator[None]:
    """Within the block, a model whose weights are missing is an error (``reason`` says why), not a scratch model."""
    token = _refusal.set(reason)
    try:
        yield
    finally:
        _refusal.reset(token)


def scratch_refusal() -> str | None:
    return _refusal.get()


def pretrained_or_scratch(model_id: str, model_path: str | None, allow_scratch: bool, source: str = "auto"
                          ) -> ResolvedModel | None:
    """The pretrained weights to load, or None when a scratch model is to be built (and is allowed)."""
    try:
        return resolve_model(model_id, model_path, source)
    except WeightsUnavailable as err:
        if model_path is not None:
            raise ScratchRefused(f"{err}. --set model_path=DIR must name a folder written by save_pretrained") from err
        if not allow_scratch:  # the row itself exists for its pretrained weights: no flag can change that
            raise ScratchRefused(f"{err}. This row is registered with allow_scratch: false (it exists for its "
                                 "pretrained weights): put them in the Hugging Face cache (HF_HOME) or pass "
                                 "--set model_path=DIR") from err
        refusal = scratch_refusal()
        if refusal is not None:
            raise ScratchRefused(
                f"{err}. A scratch model is refused here ({refusal}). Put the weights in the Hugging Face cache "
                f"(HF_HOME), pass --set model_path=DIR, or allow a scratch model explicitly (--allow-scratch)"
            ) from err
        return None


def resolve_weights(config: Any) -> ResolvedModel | None:
    """Where a model config's weights would load from, decided without loading them; None: no pretrained weights are
    reachable (a scratch model, where allowed). Configs without a model (BM25) have no ``weights_id``: None."""
    if not hasattr(config, "weights_id"):
        return None
    try:
        return resolve_model(config.weights_id(), config.model_path, getattr(config, "weights_source", "auto"))
    except WeightsUnavailable:
        return None


def weights_identity(config: Any) -> str:
    """What identifies the weights a config loads, beyond the config itself: their source, Hub snapshot or packaged
    artefact (with its sha256), or the folder given. Part of every cache key, so a model from the Hub and one from the
    4-bit port never share a cache entry. Empty for models without pretrained weights (the config says it all)."""
    resolved = resolve_weights(config)
    if resolved is None:
        return ""
    record = resolved.provenance
    key = {k: record[k] for k in ("model_id", "source", "snapshot", "artefact") if k in record}
    if record.get("source") == "path":
        key["path"] = record["path"]
    return json.dumps(key, sort_keys=True, default=str)


def active_preset(config: Any) -> str:
    """``train_pretrained`` when pretrained weights will load for ``config``, else ``train`` (the scratch preset)."""
    return "train_pretrained" if resolve_weights(config) is not None else "train"


def check_preset_overrides(name: str, config: Any, overrides: dict[str, Any]) -> None:
    """Refuse ``--set`` keys of the training preset that will *not* run (they would be silently ignored): one line
    naming the active preset and why it is the one."""
    if not hasattr(config, "train_pretrained") or not hasattr(config, "weights_id"):
        return
    touched = [key for key in ("train", "train_pretrained") if isinstance(overrides.get(key), dict)]
    if not touched:
        return
    active = active_preset(config)
    for key in touched:
        if key != active:
            keys = ", ".join(f"{key}.{k}" for k in overrides[key])
            why = (f"pretrained weights for {config.weights_id()!r} load here" if active == "train_pretrained" else
                   f"no pretrained weights for {config.weights_id()!r} are reachable here, so a scratch model trains")
            raise ValueError(f"{name}: --set {keys} would be ignored: {why} with the {active} preset; "
                             f"set {active}.{next(iter(overrides[key]))}=... instead")


@dataclass(frozen=True)
class PrecisionPlan:
    load_dtype: Any  # torch dtype of the weights
    autocast_dtype: Any | None  # torch dtype of autocast, None = no autocast
    name: str

    def autocast(self, device: Any):
        import torch

        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=device.type, dtype=self.autocast_dtype)

    def describe(self) -> dict[str, str]:
        return {"precision": self.name, "weights": str(self.load_dtype).removeprefix("torch."),
                "autocast": "none" if self.autocast_dtype is None else str(self.autocast_dtype).removeprefix("torch.")}


def precision_plan(name: str, device: Any) -> PrecisionPlan:
    import torch

    if name not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, not {name!r}")
    on_gpu = getattr(device, "type", str(device)) == "cuda"
    if name == "auto":
        name = "bf16-autocast" if on_gpu else "fp32"
    return {"fp32": PrecisionPlan(torch.float32, None, "fp32"),
            "bf16-autocast": PrecisionPlan(torch.float32, torch.bfloat16, "bf16-autocast"),
            "bf16": PrecisionPlan(torch.bfloat16, None, "bf16")}[name]


def training_preset(config: Any, kind: str) -> tuple[Any, str]:
    """(TrainConfig, preset name) for weights of ``kind`` (``pretrained`` or ``scratch``)."""
    if kind == "pretrained" and getattr(config, "train_pretrained", None) is not None:
        return config.train_pretrained, "pretrained"
    return config.train, "scratch"


def enable_checkpointing(model: Any) -> None:
    """Activation (gradient) checkpointing: layers recompute their activations in the backward pass instead of keeping
    them - about a third more compute for a fraction of the activation memory (large backbones)."""
    enable = getattr(model, "activation_checkpointing_enable", None) or model.gradient_checkpointing_enable
    enable()
