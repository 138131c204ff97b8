"""The leaderboard page (results/index.html) and the paths into the suite for the user's own model, data and runs.

The page is tested in a real browser: Debian's Chromium, headless, driven by Selenium through chromedriver, loads the
page from disk; the test reads the DOM after the scripts ran (sorting a column reorders the rows, the tabs switch, a
row's details open) and that the console logged no error, and saves a screenshot. ``.ci/run`` installs Chromium when
it is missing; the browser test is skipped with the reason only when it cannot run.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from benchmark.cli.main import main
from benchmark.records.results import find_results, load_result


def _beir_from(dataset, folder: Path, n_queries: int = 120) -> Path:
    """A small BEIR folder written from a loaded dataset (its first ``n_queries`` judged queries)."""
    (folder / "qrels").mkdir(parents=True)
    qids = list(dataset.qrels)[:n_queries]
    with open(folder / "corpus.jsonl", "w", encoding="utf-8") as out:
        for pid, text in dataset.corpus.items():
            out.write(json.dumps({"_id": pid, "title": "", "text": text}, ensure_ascii=False) + "\n")
    with open(folder / "queries.jsonl", "w", encoding="utf-8") as out:
        for qid in qids:
            out.write(json.dumps({"_id": qid, "text": dataset.queries[qid]}, ensure_ascii=False) + "\n")
    with open(folder / "qrels" / "test.tsv", "w", encoding="utf-8") as out:
        out.write("query-id\tcorpus-id\tscore\n")
        for qid in qids:
            out.writelines(f"{qid}\t{pid}\t{rel}\n" for pid, rel in dataset.qrels[qid].items())
    return folder


@pytest.fixture(scope="module")
def site(tmp_path_factory, demo):
    """Results for two datasets (demo and a BEIR folder), an external run and a hybrid row; the report and page."""
    root = tmp_path_factory.mktemp("site")
    out = root / "results"
    fast = ["--set", "latency_queries=5"]
    assert main(["run", "bm25s-bert", "bm25-qwen", "--dataset", "demo", "--output", str(out), *fast]) == 0
    beir = _beir_from(demo, root / "mini-beir")
    assert main(["run", "bm25s-bert", "--dataset", f"beir:{beir}", "--output", str(out), *fast]) == 0
    (bm25,) = find_results(out, "demo", "bm25s-bert")
    assert main(["eval", str(bm25.with_suffix(".trec")), "--dataset", "demo", "--name", "my-run",
                 "--output", str(out)]) == 0
    assert main(["fuse", "bm25s-bert", "bm25-qwen", "--method", "rrf", "--dataset", "demo", "--results", str(out)]) == 0
    assert main(["report", "--results", str(out)]) == 0
    return out


def test_a_beir_folder_is_a_dataset_and_scores_like_the_data_it_came_from(site, tmp_path, pool):
    """A BEIR folder written from the pool gives the pool's BM25 numbers, fingerprinted like the Multi-CPR sets."""
    folder = _beir_from(pool, tmp_path / "pool-beir", n_queries=len(pool.qrels))
    out = tmp_path / "results"
    for dataset in (f"beir:{folder}", "multicpr-ecom-pool"):
        assert main(["run", "bm25s-bert", "--dataset", dataset, "--output", str(out), "--set", "latency_queries=5",
                     *(["--data-dir", str(Path(pool.files["queries"]["path"]).parent.parent)]
                       if dataset.startswith("multicpr") else [])]) == 0
    beir, ours = (load_result(find_results(out, d, "bm25s-bert")[0]) for d in ("beir-pool-beir", "multicpr-ecom-pool"))
    assert beir["metrics"] == ours["metrics"]
    assert beir["dataset"]["fingerprint"] != ours["dataset"]["fingerprint"] and len(beir["dataset"]["fingerprint"]) == 64
    assert beir["dataset"]["corpus_label"] == "custom" and not beir["dataset"]["comparable_to_paper"]


def test_an_external_run_and_a_hybrid_row_are_listed_with_what_they_are(site, capsys):
    report = (site / "REPORT.md").read_text()
    assert "| my-run |" in report and "External runs" in report
    assert "| bm25s-bert+bm25-qwen@rrf |" in report and "Hybrid rows" in report
    external = load_result(find_results(site, "demo", "my-run")[0])
    assert external["external"]["sha256"] and external["provenance"]["run"]["kind"] == "external"
    hybrid = load_result(find_results(site, "demo", "bm25s-bert+bm25-qwen@rrf")[0])
    folds = hybrid["fusion"]["params_per_fold"]
    assert len(folds) == 2 and all(f["tuned_on_queries"] + f["evaluated_queries"] == 400 for f in folds)
    capsys.readouterr()
    assert main(["compare", "bm25s-bert+bm25-qwen@rrf", "bm25s-bert", "bm25-qwen", "my-run", "--dataset", "demo",
                 "--results", str(site)]) == 0
    assert "bm25s-bert+bm25-qwen@rrf - bm25s-bert" in capsys.readouterr().out


def test_rrf_fusion_matches_a_hand_computation():
    """ranx's RRF, as the fuse command calls it, on a hand-made example: score = sum over runs of 1 / (k + rank)."""
    from benchmark.runs.fusion import fuse_runs

    qrels = {f"q{i}": {"a": 1} for i in range(4)}
    one = {q: [("a", 3.0), ("b", 2.0), ("c", 1.0)] for q in qrels}
    two = {q: [("c", 3.0), ("a", 2.0)] for q in qrels}
    fused, chosen = fuse_runs([one, two], qrels, "rrf")
    ks = {fold["params"]["k"] for fold in chosen}
    assert set(fused) == set(qrels) and len(chosen) == 2
    for hits in fused.values():
        scores = dict(hits)
        assert any(scores["a"] == pytest.approx(1 / (k + 1) + 1 / (k + 2)) for k in ks)
        assert any(scores["c"] == pytest.approx(1 / (k + 3) + 1 / (k + 1)) for k in ks)
        assert any(scores["b"] == pytest.approx(1 / (k + 2)) for k in ks)
        assert [d for d, _ in hits] == ["a", "c", "b"]


def test_the_page_is_self_contained_and_regenerates_to_the_same_bytes(site):
    page = site / "index.html"
    first = page.read_bytes()
    text = first.decode("utf-8")
    assert "http://" not in text.replace('xmlns="http://www.w3.org/2000/svg"', "") and "https://" not in text
    assert "<svg" in text and text.count('data-panel="') == 2
    assert main(["report", "--results", str(site)]) == 0
    assert page.read_bytes() == first


def _browser():
    selenium = pytest.importorskip("selenium", reason="selenium is not installed (pip install -e '.[test]')")
    del selenium
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not chromium or not driver:
        pytest.skip("Debian's chromium and chromium-driver are not installed (.ci/run installs them: apt-get install "
                    "chromium chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--window-size=1400,1000"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(driver), options=options)


@pytest.mark.slow
def test_the_page_works_in_a_real_browser(site, tmp_path):
    from selenium.webdriver.common.by import By

    browser = _browser()
    try:
        browser.get((site / "index.html").as_uri())
        panels = browser.find_elements(By.CSS_SELECTOR, "section.panel")
        names = [p.get_attribute("data-panel") for p in panels]
        assert sorted(names) == ["beir-mini-beir", "demo"] and [p.is_displayed() for p in panels] == [True, False]
        tabs = browser.find_elements(By.CSS_SELECTOR, ".tabs button")
        demo_tab = next(t for t in tabs if t.get_attribute("data-tab") == "demo")
        demo_tab.click()  # the tabs switch
        assert [p.is_displayed() for p in panels] == [name == "demo" for name in names]
        assert demo_tab.get_attribute("aria-selected") == "true"
        table = panels[names.index("demo")].find_element(By.TAG_NAME, "table")
        column = [h.text for h in table.find_elements(By.TAG_NAME, "th")].index("MRR@10")

        def mrr_order() -> list[float]:
            rows = table.find_elements(By.CSS_SELECTOR, "tbody tr.main")
            return [float(r.find_elements(By.TAG_NAME, "td")[column].get_attribute("data-sort")) for r in rows]

        assert len(mrr_order()) == 4  # bm25s-bert, bm25-qwen, my-run, the hybrid row
        header = table.find_elements(By.TAG_NAME, "th")[column]
        header.click()
        descending = mrr_order()
        assert descending == sorted(descending, reverse=True) and header.get_attribute("aria-sort") == "descending"
        header.click()
        ascending = mrr_order()
        assert ascending == sorted(ascending) and ascending != descending  # sorting reorders the rows
        more = table.find_element(By.CSS_SELECTOR, "button.more")
        detail = browser.find_element(By.ID, more.get_attribute("aria-controls"))
        assert not detail.is_displayed()
        more.click()
        assert detail.is_displayed() and "python -m benchmark" in detail.text and "config hash" in detail.text
        errors = [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
        assert errors == []
        shot = tmp_path / "page.png"
        assert browser.save_screenshot(str(shot)) and shot.stat().st_size > 10_000
    finally:
        browser.quit()


def test_your_own_dense_model_runs_by_path_under_its_own_name(tmp_path, demo):
    """`run dense --model-path DIR --name my-model`: a tiny save_pretrained BERT, zero-shot, filed as my-model, listed
    by the report with its provenance; a template without a model is refused."""
    import torch
    from transformers import BertConfig, BertModel

    from retrievers.resources.tokenization import load_tokenizer

    tokenizer = load_tokenizer("bert-base-chinese").hf
    torch.manual_seed(0)
    model = BertModel(BertConfig(vocab_size=len(tokenizer), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                 intermediate_size=32, max_position_embeddings=128))
    folder = tmp_path / "my-encoder"
    model.save_pretrained(str(folder))
    tokenizer.save_pretrained(str(folder))
    out = tmp_path / "results"
    assert main(["run", "dense", "--model-path", str(folder), "--pooling", "mean", "--query-prefix", "query: ",
                 "--name", "my-model", "--dataset", "demo", "--output", str(out), "--set", "latency_queries=5"]) == 0
    payload = load_result(find_results(out, "demo", "my-model")[0])
    model_record = payload["provenance"]["model"]
    assert model_record["kind"] == "pretrained" and model_record["source"] == "path" and model_record["weights_sha256"]
    assert payload["retriever"]["registered_as"] == "dense" and payload["retriever"]["config"]["pooling"] == "mean"
    assert payload["retriever"]["config"]["query_instruction"] == "query: "
    assert main(["report", "--results", str(out)]) == 0
    assert "| my-model |" in (out / "REPORT.md").read_text()
    assert main(["run", "dense", "--dataset", "demo", "--output", str(out)]) == 2


def test_a_hybrid_or_external_run_never_takes_a_registered_row_name(site, capsys):
    """`--name bm25-qwen` would file the fused or external run as the registered row and the report would show it
    as that row: refused before any work, nothing written."""
    before = set(find_results(site, "demo"))
    (bm25,) = find_results(site, "demo", "bm25s-bert")
    capsys.readouterr()
    assert main(["fuse", "bm25s-bert", "bm25-qwen", "--name", "bm25-qwen", "--dataset", "demo",
                 "--results", str(site)]) == 2
    assert "'bm25-qwen' is a registered retriever" in capsys.readouterr().err
    assert main(["eval", str(bm25.with_suffix(".trec")), "--dataset", "demo", "--name", "bm25-qwen",
                 "--output", str(site)]) == 2
    assert "'bm25-qwen' is a registered retriever" in capsys.readouterr().err
    assert set(find_results(site, "demo")) == before
