"""``python -m benchmark projection``: what the paper's PROSPER (Qwen2.5-3B) costs, measured small, projected large.

No GPU and no Qwen2.5-3B weights are needed for the *shape* of the cost: training and encoding cost follow from the
architecture. This command

1. **measures** on whatever device it runs on (``device``): one real PROSPER training step (our trainer's
   ``train_step``: both sides encoded, LRN, LFW, InfoNCE + FLOPS, backward, AdamW) and corpus encoding, with the
   architecture of a real Qwen2.5 model (``measure_model``, random weights, the real 151,665-token vocabulary), with and
   without gradient checkpointing: seconds per step, passages per second, peak memory;
2. **checks the cost model** on those measurements: training FLOPs = 6 x parameters x tokens (+ the vocabulary heads
   at the last position), encoding FLOPs = 2 x parameters x tokens; memory = 16 bytes per parameter (fp32 master
   weights, gradients, AdamW's two moments) + activations (Korthikanti et al. 2022: ~34 h bytes per token per layer in
   half precision without recomputation, 2 h with it) - the measured numbers are printed beside the model's;
3. **projects** Qwen2.5-3B at the paper's setting (batch 64 per device, max length 64, 5 epochs over 100k training
   pairs, 1,002,822 passages to encode) on 1 and 8 GPUs of ``gpu_tflops`` dense bf16 throughput at ``mfu`` model-FLOPs
   utilisation. Those two are *assumptions*, stated in the output; everything else is counted or measured.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

# Published Qwen2.5 architectures (config.json of the Hugging Face releases)
ARCHITECTURES = {
    "Qwen/Qwen2.5-0.5B": {"hidden_size": 896, "layers": 24, "heads": 14, "kv_heads": 2, "intermediate_size": 4864},
    "Qwen/Qwen2.5-1.5B": {"hidden_size": 1536, "layers": 28, "heads": 12, "kv_heads": 2, "intermediate_size": 8960},
    "Qwen/Qwen2.5-3B": {"hidden_size": 2048, "layers": 36, "heads": 16, "kv_heads": 2, "intermediate_size": 11008},
}
QWEN_VOCAB = 151_936  # the released embedding matrix (151,665 tokens, padded)


@dataclass
class ProjectionConfig:
    measure_model: str = "Qwen/Qwen2.5-0.5B"
    measure_batch: int = 8  # queries (and their passages) per measured step
    measure_steps: int = 2
    encode_passages: int = 64
    max_length: int = 64
    device: str = "auto"
    target_model: str = "Qwen/Qwen2.5-3B"
    batch_per_device: int = 64
    query_tokens: int = 16  # measured mean of Multi-CPR dev queries with the Qwen tokenizer is printed too
    passage_tokens: int = 64
    train_pairs: int = 100_000
    epochs: int = 5
    passages: int = 1_002_822
    gpu_tflops: float = 989.0  # H100 SXM dense bf16 peak (assumption)
    mfu: float = 0.40  # assumed model-FLOPs utilisation
    gpus: tuple[int, ...] = (1, 8)
    extra: dict[str, Any] = field(default_factory=dict)


def parameters(arch: dict[str, int], vocab: int = QWEN_VOCAB, lrn: bool = True) -> dict[str, int]:
    """Parameter count of a Qwen2 model (tied embeddings) plus PROSPER's LRN head (hidden -> vocabulary)."""
    h, layers, inter = arch["hidden_size"], arch["layers"], arch["intermediate_size"]
    kv = h // arch["heads"] * arch["kv_heads"]
    per_layer = h * h + h + 2 * (h * kv + kv) + h * h + 3 * h * inter + 2 * h  # q, k, v (biases), o, MLP, norms
    backbone = vocab * h + layers * per_layer + h
    return {"backbone": backbone, "lrn": (h * vocab + vocab) if lrn else 0}


def memory_model_gb(arch: dict[str, int], tokens_per_step: int, checkpointing: bool, activation_bytes: int = 2,
                    vocab_rows: int = 0) -> dict[str, float]:
    """Training memory of one device: states (16 B/param), activations, the vocabulary-sized batch tensors."""
    n = sum(parameters(arch).values())
    per_token_layer = (2 if checkpointing else 34) * arch["hidden_size"] * activation_bytes / 2
    activations = tokens_per_step * arch["layers"] * per_token_layer
    vocab_tensors = vocab_rows * QWEN_VOCAB * 4 * 6  # W, w, I, LRN output, gradients: fp32
    states = 16 * n
    gib = 2**30
    return {"states": states / gib, "activations": activations / gib, "vocabulary_tensors": vocab_tensors / gib,
            "total": (states + activations + vocab_tensors) / gib}


def training_flops(arch: dict[str, int], queries: int, q_tokens: int, p_tokens: int) -> float:
    n = parameters(arch)["backbone"] - QWEN_VOCAB * arch["hidden_size"]  # embedding lookups cost no FLOPs
    tokens = queries * (q_tokens + p_tokens)
    heads = 2 * queries * 2 * arch["hidden_size"] * QWEN_VOCAB * 2  # vocabulary head + LRN, last position, both sides
    return 3 * (2 * n * tokens + heads)


def encoding_flops(arch: dict[str, int], passages: int, p_tokens: int) -> float:
    n = parameters(arch)["backbone"] - QWEN_VOCAB * arch["hidden_size"]
    return 2 * n * passages * p_tokens + 2 * passages * 2 * arch["hidden_size"] * QWEN_VOCAB


def measure(cfg: ProjectionConfig) -> dict[str, Any]:
    """One real training step (with and without checkpointing) and one encoding batch of PROSPER on
    ``measure_model``'s architecture, each in a fresh process so that peak memory is its own."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    out: dict[str, Any] = {}
    for checkpointing in (False, True):
        with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
            out.update(pool.submit(_measure_one, cfg, checkpointing).result())
    return out


def _measure_one(cfg: ProjectionConfig, checkpointing: bool) -> dict[str, Any]:
    import torch

    from benchmark.runs.stages import peak_rss_mb
    from retrievers.base import torch_device
    from retrievers.sparse import SparseConfig, SparseEncoder, SparseScratch
    from retrievers.training.config import TrainConfig
    from retrievers.training.loop import train_step

    arch = ARCHITECTURES[cfg.measure_model]
    device = torch_device(cfg.device)
    out: dict[str, Any] = {"model": cfg.measure_model, "device": str(device)}
    text = "华为 Mate60 Pro 智能手机 12GB+256GB 雅川青 5G 全网通 卫星通话 官方旗舰店 正品 顺丰包邮 " * 3
    queries = ["华为手机 mate60 pro 12+256"] * cfg.measure_batch
    passages = [text] * cfg.measure_batch
    if True:  # one configuration per process (see measure)
        torch.manual_seed(0)
        config = SparseConfig(scratch=SparseScratch(vocabulary="full", **{k: arch[k] for k in (
            "hidden_size", "heads", "kv_heads", "intermediate_size")}, layers=arch["layers"]),
            max_length=cfg.max_length, device=str(device), gradient_checkpointing=checkpointing,
            train=TrainConfig(epochs=1))
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        before = peak_rss_mb()
        model = SparseEncoder(config, texts=queries + passages).to(device)
        model.train(True)
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)
        times = []
        for step in range(cfg.measure_steps + 1):  # the first step is a warm-up
            start = time.perf_counter()
            optimizer.zero_grad()
            train_step(model, model, queries, passages, step, 10, 0)
            optimizer.step()
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            times.append(time.perf_counter() - start)
        tokens = model.tokenizer(queries + passages, truncation=True, max_length=cfg.max_length)["input_ids"]
        q_tok = sum(len(t) for t in tokens[:len(queries)]) / len(queries)
        p_tok = sum(len(t) for t in tokens[len(queries):]) / len(passages)
        peak = (torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else peak_rss_mb())
        key = "with_checkpointing" if checkpointing else "without_checkpointing"
        out[key] = {"step_s": min(times[1:]), "peak_memory_mb": peak, "memory_before_mb": before,
                    "query_tokens": q_tok, "passage_tokens": p_tok, "parameters": sum(p.numel() for p in
                                                                                       model.parameters())}
        flops = training_flops(arch, cfg.measure_batch, int(q_tok), int(p_tok))
        out[key]["achieved_tflops"] = flops / out[key]["step_s"] / 1e12
        if not checkpointing:
            model.eval()
            with torch.no_grad():
                batch = [text] * cfg.encode_passages
                model.encode_sparse(batch[:8], "doc", 8)
                start = time.perf_counter()
                model.encode_sparse(batch, "doc", cfg.encode_passages)
                seconds = time.perf_counter() - start
            out["encode"] = {"passages_per_s": cfg.encode_passages / seconds, "batch": cfg.encode_passages,
                             "achieved_tflops": encoding_flops(arch, cfg.encode_passages, int(p_tok)) / seconds / 1e12}
    return out


def project(cfg: ProjectionConfig, measured: dict[str, Any]) -> dict[str, Any]:
    arch = ARCHITECTURES[cfg.target_model]
    rate = cfg.gpu_tflops * 1e12 * cfg.mfu
    step_flops = training_flops(arch, cfg.batch_per_device, cfg.query_tokens, cfg.passage_tokens)
    tokens = cfg.batch_per_device * (cfg.query_tokens + cfg.passage_tokens)
    out: dict[str, Any] = {"model": cfg.target_model, "parameters": parameters(arch),
                           "assumptions": {"gpu_tflops_bf16": cfg.gpu_tflops, "mfu": cfg.mfu},
                           "per_device_batch": cfg.batch_per_device, "tokens_per_step": tokens}
    for checkpointing in (False, True):
        step_s = step_flops * (4 / 3 if checkpointing else 1) / rate  # recomputation: one more forward
        memory = memory_model_gb(arch, tokens, checkpointing, vocab_rows=cfg.batch_per_device * 2 * 8)
        key = "with_checkpointing" if checkpointing else "without_checkpointing"
        out[key] = {"step_s": step_s, "steps_per_s": 1 / step_s, "memory_gb": memory}
        for gpus in cfg.gpus:
            steps = math.ceil(cfg.train_pairs / (cfg.batch_per_device * gpus)) * cfg.epochs
            encode_s = encoding_flops(arch, cfg.passages, cfg.passage_tokens) / (rate * gpus)
            out[key][f"{gpus}_gpu"] = {"train_steps": steps, "train_hours": steps * step_s / 3600,
                                       "encode_hours": encode_s / 3600,
                                       "total_hours": (steps * step_s + encode_s) / 3600}
    out["encode_passages_per_s_per_gpu"] = rate / (encoding_flops(arch, 1, cfg.passage_tokens))
    # the cost model checked against this run's measurement (same formulas, the measured architecture)
    small = ARCHITECTURES[cfg.measure_model]
    check = {}
    for key in ("without_checkpointing", "with_checkpointing"):
        m = measured.get(key)
        if not m:
            continue
        tokens_measured = cfg.measure_batch * (m["query_tokens"] + m["passage_tokens"])
        predicted = memory_model_gb(small, int(tokens_measured), key == "with_checkpointing", activation_bytes=4,
                                    vocab_rows=2 * cfg.measure_batch)
        check[key] = {"measured_peak_gb": (m["peak_memory_mb"] - m["memory_before_mb"]) / 1024,
                      "model_gb": predicted["total"], "measured_tflops": m["achieved_tflops"]}
    out["cost_model_check"] = check
    return out


def markdown(payload: dict[str, Any]) -> str:
    m, p = payload["measured"], payload["projected"]
    lines = [f"Measured on `{m['device']}` with the {m['model']} architecture (random weights, real vocabulary):", "",
             f"| | step s (batch {payload['config']['measure_batch']}) | peak memory GB | achieved TFLOPS |",
             "|---|---|---|---|"]
    for key in ("without_checkpointing", "with_checkpointing"):
        r = m[key]
        lines.append(f"| {key.replace('_', ' ')} | {r['step_s']:.2f} | {r['peak_memory_mb'] / 1024:.1f} | "
                     f"{r['achieved_tflops']:.3f} |")
    lines += ["", f"Encoding: {m['encode']['passages_per_s']:.1f} passages/s ({m['encode']['achieved_tflops']:.3f} "
              "TFLOPS achieved).", "",
              f"Projected for {p['model']} ({sum(p['parameters'].values()) / 1e9:.2f}B parameters with the LRN head), "
              f"batch {p['per_device_batch']} per GPU, assuming {p['assumptions']['gpu_tflops_bf16']:.0f} TFLOPS bf16 "
              f"at {p['assumptions']['mfu']:.0%} MFU:", "",
              "| | memory per GPU GB | s/step | 1 GPU: train h | 1 GPU: encode h | 1 GPU: total h | 8 GPUs: total h |",
              "|---|---|---|---|---|---|---|"]
    for key in ("without_checkpointing", "with_checkpointing"):
        r = p[key]
        lines.append(f"| {key.replace('_', ' ')} | {r['memory_gb']['total']:.0f} | {r['step_s']:.2f} | "
                     f"{r['1_gpu']['train_hours']:.2f} | {r['1_gpu']['encode_hours']:.2f} | "
                     f"{r['1_gpu']['total_hours']:.2f} | {r['8_gpu']['total_hours']:.2f} |")
    return "\n".join(lines)


def run_projection(cfg: ProjectionConfig, output: Path) -> tuple[Path, dict[str, Any]]:
    from benchmark.records.results import environment, utc_stamp

    measured = measure(cfg)
    payload = {"schema_version": 1, "config": asdict(cfg), "measured": measured, "projected": project(cfg, measured),
               "environment": environment(),
               "note": "measured: the 'measured' block (this machine, this run); projected: the 'projected' block "
                       "(FLOP and memory model with the stated GPU assumptions)"}
    stamp = utc_stamp()
    folder = Path(output) / "projection"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{stamp}.json"
    path.write_text(json.dumps(payload, indent=2, default=str) + "\n")
    (folder / f"{stamp}.md").write_text("# PROSPER cost projection\n\n" + markdown(payload) + "\n")
    return path, payload
