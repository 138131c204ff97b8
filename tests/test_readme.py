"""The READMEs: a short front page with its architecture, and results/README.md whose tables are the result files'."""

from pathlib import Path

from benchmark import REPO_ROOT
from benchmark.report.readme import BLOCK, refresh

RESULTS_README = REPO_ROOT / "results" / "README.md"


def test_the_front_page_is_short_and_has_an_architecture_section():
    text = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 250
    assert "\n## Architecture\n" in text and "results/README.md" in text


def test_every_table_of_the_results_readme_is_what_report_makes_of_the_current_results():
    text = RESULTS_README.read_text(encoding="utf-8")
    blocks = list(BLOCK.finditer(text))
    assert blocks, "results/README.md declares no generated table"
    assert refresh(text, REPO_ROOT / "results") == text, "run `python -m benchmark report` and commit results/README.md"


def test_a_number_edited_by_hand_is_put_back(tmp_path):
    text = RESULTS_README.read_text(encoding="utf-8")
    block = next(BLOCK.finditer(text))
    first_row = block["table"].splitlines()[2]
    cells = first_row.split("|")
    cells[3] = " 99.99 "  # the MRR@10 cell
    edited = text.replace(first_row, "|".join(cells), 1)
    assert edited != text
    assert refresh(edited, REPO_ROOT / "results") == text


def test_a_declared_row_without_a_current_result_says_so(tmp_path):
    (tmp_path / "demo").mkdir()
    text = "<!-- table demo\nno-such-row: nothing\n-->\n<!-- end table -->"
    assert "| no-such-row | nothing | no current result |" in refresh(text, Path(tmp_path))
