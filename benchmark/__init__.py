"""The benchmark: datasets, runs, records, reports and the serving study around the retrievers of ``retrievers/``.

Packages, from the bottom up: ``data`` (datasets and the pool protocol), ``evaluation`` (measures, per-query scores,
significance), ``records`` (result files, rows, staleness, the leaderboard), ``runs`` (a run's straight line and the
commands that make result files), ``report`` (markdown, page, figures), ``serving`` (index-bench and cost), ``cli``.
Each imports only packages listed before it (and ``retrievers``); ``retrievers`` never imports ``benchmark``.
"""

from pathlib import Path

#: The checkout's root: the datasets/ manifests and the results/ folder are found from here.
REPO_ROOT = Path(__file__).resolve().parent.parent
