"""Run one piece of a long benchmark in a forked child, so that a native crash costs that piece and not the run.

Why: index-bench drives four native engines (Java, C++, Rust) through Python bindings for hours. A segmentation fault
in any of them (Seismic's Rust build did this at 100,000 real-shaped documents, after 72 minutes of a run) kills the
Python process with everything it measured. Forked after the workload and our index are built, the child inherits
them for free (copy-on-write), streams each result back as it is measured, and gives its memory - a JVM included -
back to the machine when it exits. The parent keeps every message that arrived and learns how the child ended.
"""

from __future__ import annotations

import multiprocessing
import resource
import signal
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass
class Outcome:
    """How an isolated piece ended: ``failure`` is None when it finished, else what stopped it (an exception raised
    in the child, or the signal or exit status it died with) and ``last_step`` the step it had announced last."""

    failure: str | None
    last_step: str = ""
    messages: int = 0
    peak_rss_gib: float | None = None  # the child's own peak, sent as it ends (None when it died before that)


def run_isolated(work: Callable[[Callable[[str, Any], None]], None], receive: Callable[[str, Any], None]) -> Outcome:
    """Call ``work(send)`` in a forked child; every ``send(kind, payload)`` there reaches ``receive(kind, payload)``
    here as it happens (payloads are pickled). ``send("step", text)`` names what the child is doing, so a crash can
    say where it happened. Exceptions in the child are reported, not raised: the caller decides what a failure
    means."""
    context = multiprocessing.get_context("fork")  # inherit the built workload instead of pickling gigabytes of it
    reader, writer = context.Pipe(duplex=False)
    child = context.Process(target=_child, args=(work, writer), daemon=True)
    child.start()
    writer.close()  # the parent's copy: EOF arrives when the child's end closes, however it ends
    outcome = Outcome(None)
    while True:
        try:
            kind, payload = reader.recv()
        except EOFError:
            break
        if kind == "step":
            outcome.last_step = payload
        elif kind == "error":
            outcome.failure = payload
        elif kind == "peak_rss_gib":
            outcome.peak_rss_gib = payload
        else:
            outcome.messages += 1
            receive(kind, payload)
    child.join()
    reader.close()
    if outcome.failure is None and child.exitcode != 0:
        outcome.failure = describe_exit(child.exitcode)
    return outcome


def describe_exit(exitcode: int | None) -> str:
    """multiprocessing's exit code in words: negative means killed by that signal."""
    if exitcode is not None and exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        hint = " (the kernel's OOM killer sends this when memory runs out)" if -exitcode == signal.SIGKILL else ""
        return f"crashed: killed by {name}{hint}"
    return f"crashed: exit status {exitcode}"


def _child(work: Callable[[Callable[[str, Any], None]], None], writer) -> None:
    def send(kind: str, payload: Any) -> None:
        writer.send((kind, payload))

    try:
        work(send)
    except Exception as err:  # reported to the parent with its traceback on stderr
        traceback.print_exc()
        send("error", f"{type(err).__name__}: {err}")
    finally:
        # its own peak: what one engine needs (pages shared with the parent count once they are touched)
        send("peak_rss_gib", peak_rss_gib())
        writer.close()


def peak_rss_gib() -> float:
    """This process's peak resident set so far (Linux reports KiB): with the peak of the peers' children, a run's
    memory ceiling, from which a 1M run on a smaller machine is planned."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def peak_child_rss_gib() -> float:
    """The largest peak resident set of any child that has ended (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20
