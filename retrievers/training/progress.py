"""Progress of a long training: a bar with loss and ETA on a terminal, a line every so often otherwise."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from tqdm.auto import tqdm


# ------------------------------------------------------------------------------------------------------ progress
def run_label(work_dir: Path) -> str:
    """The cache entry (and fold) a training belongs to, e.g. ``prosper-3ed4228e07e2`` or ``splade-... fold-1``."""
    parent = work_dir.parent
    return f"{parent.parent.name} {parent.name}" if parent.name.startswith("fold-") else parent.name


def say(line: str) -> None:
    tqdm.write(line, file=sys.stderr)


class Progress:
    """A bar with loss and ETA on a terminal; otherwise one line every ``PROSPER_BENCH_PROGRESS_SECONDS`` (30)."""

    def __init__(self, label: str, total: int, done: int, enabled: bool):
        self.label, self.total, self.start_step = label, total, done
        self.enabled = enabled
        self.interactive = enabled and sys.stderr.isatty()
        self.every = float(os.environ.get("PROSPER_BENCH_PROGRESS_SECONDS", "30"))
        self.started = self.last = time.monotonic()
        self.done = done
        self.bar = tqdm(total=total, initial=done, desc=f"training {label}", unit="step", file=sys.stderr,
                        dynamic_ncols=True) if self.interactive else None

    def update(self, epoch: int, epochs: int, loss: float) -> None:
        self.done += 1
        if self.bar is not None:
            self.bar.set_postfix(epoch=f"{epoch + 1}/{epochs}", loss=f"{loss:.4f}", refresh=False)
            self.bar.update(1)
        elif self.enabled and time.monotonic() - self.last >= self.every:
            self.last = time.monotonic()
            elapsed = self.last - self.started
            rate = (self.done - self.start_step) / max(elapsed, 1e-9)
            eta = (self.total - self.done) / max(rate, 1e-9)
            say(f"training {self.label}: epoch {epoch + 1}/{epochs}, step {self.done}/{self.total} "
                 f"({100 * self.done / self.total:.0f}%), loss {loss:.4f}, {_duration(elapsed)} elapsed, "
                 f"ETA {_duration(eta)}")

    def epoch_done(self, record: dict[str, float]) -> None:
        if not self.enabled:
            return
        val = f", validation MRR {record['val_mrr']:.4f}" if "val_mrr" in record else ""
        say(f"training {self.label}: epoch {record['epoch']} done, loss {record.get('loss', float('nan')):.4f}{val}")

    def say(self, line: str) -> None:
        if self.enabled:
            say(f"training {self.label}: {line}")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m" if seconds >= 3600 else f"{seconds // 60}m{seconds % 60:02d}s"
