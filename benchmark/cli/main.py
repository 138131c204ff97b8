"""``python -m benchmark``: parse the arguments, run the command, turn what the user can fix into one ``error:`` line."""

from __future__ import annotations

import logging
import sys

from benchmark.cli.common import UsageError
from benchmark.cli.parser import build_parser
from benchmark.cli.results import cmd_check, cmd_compare, cmd_eval, cmd_fuse, cmd_plot, cmd_report
from benchmark.cli.running import cmd_explain, cmd_list, cmd_run, cmd_tradeoff
from benchmark.cli.studies import cmd_choose, cmd_cost_growth, cmd_index_bench, cmd_projection, cmd_spread
from benchmark.data.files import DataError
from benchmark.registry import ConfigError
from benchmark.runs.external import RunRefused
from benchmark.runs.plan import PlanError
from retrievers.resources.artefacts import ArtefactCorrupt
from retrievers.resources.jvm import JavaUnavailable


def _quiet_libraries() -> None:
    """transformers' load reports and per-file progress bars are noise between this tool's own lines."""
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
    except ImportError:  # pragma: no cover - a dependency
        pass


def main(argv: list[str] | None = None) -> int:
    from benchmark.records.results import git_state

    git_state()  # the tree as this process starts: what its imports are (results.git_state)
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
    for noisy in ("bm25s", "jieba", "sentence_transformers", "transformers", "faiss"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    _quiet_libraries()
    handlers = {"list": cmd_list, "run": cmd_run, "eval": cmd_eval, "index-bench": cmd_index_bench,
                "projection": cmd_projection, "cost-growth": cmd_cost_growth,
                "tradeoff": cmd_tradeoff, "plot": cmd_plot, "report": cmd_report, "check": cmd_check,
                "compare": cmd_compare, "spread": cmd_spread, "choose": cmd_choose, "fuse": cmd_fuse,
                "explain": cmd_explain}
    try:
        return handlers[args.command](args)
    except (UsageError, PlanError, RunRefused, DataError, ConfigError, ArtefactCorrupt, JavaUnavailable) as err:  # one line
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted: result files already written and finished indexes are kept; an interrupted training "
              "resumes from its last finished epoch on the next run", file=sys.stderr)
        return 130
