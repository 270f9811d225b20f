"""The evaluation harness end to end on a tiny model: outputs exist and agree; bad input is clear."""

from __future__ import annotations

import http.server
import json
import re
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from evals.config import EvalConfig
from evals.datasets import build, write_jsonl
from evals.metrics import METRICS
from evals.report import fmt
from evals.run import evaluate, main
from tiny import HashEmbedder, tiny_gist_model, tiny_tokenizer

ROOT = Path(__file__).resolve().parent.parent
PNG = b"\x89PNG\r\n\x1a\n"



@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    tok = tiny_tokenizer()
    samples = build("niah", tok, limit=2, lengths=(160,), depths=(0.2, 0.8)) + build("theme", tok, limit=1,
                                                                                     theme_tokens=160)
    return write_jsonl(samples, tmp_path_factory.mktemp("data") / "three.jsonl")


def _run(out: Path, dataset: Path, **overrides) -> dict:
    cfg = EvalConfig(**{"mode": "all", "dataset": str(dataset), "metrics": "basic", "out": str(out),
                        "max_new_tokens": 4, "progress": False, **overrides})
    model = overrides.get("sweep_gist_tokens") and (lambda k: tiny_gist_model(k=k, chunk_tokens=48))
    return evaluate(cfg, model=model or tiny_gist_model(k=4, chunk_tokens=48), embedder=HashEmbedder())


@pytest.fixture(scope="module")
def run(tmp_path_factory, dataset) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("run")
    return out, _run(out, dataset)


def test_outputs_exist_and_agree(run):
    out, returned = run
    results = json.loads((out / "results.json").read_text())
    report = (out / "report.md").read_text()
    assert results["summary"] == json.loads(json.dumps(returned["summary"]))
    # every (sample, mode) cell is recorded, with prediction, reference and scores
    cells = {(r["sample_id"], r["mode"]) for r in results["samples"]}
    assert len(cells) == len(results["samples"]) == 3 * 4
    assert results["dataset"]["n_samples"] == 3
    for r in results["samples"]:
        assert r["error"] is None and isinstance(r["prediction"], str) and r["reference"]
        assert ("exact_match" in r["scores"]) == (r["task"] == "niah")
        assert r["cost"]["kv_bytes"] > 0 and r["cost"]["ttft_s"] <= r["cost"]["total_s"]
    # what makes a run reproducible and comparable
    assert results["config"]["seed"] == 0 and results["command"].startswith("python evals/run.py --mode all")
    env = results["environment"]
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True,
                          text=True, check=True).stdout.strip()
    assert env["git_hash"].removesuffix("-dirty") == head  # the real commit, not the "unknown" fallback
    assert env["device"].startswith("cpu") and env["versions"]["torch"]
    assert all(isinstance(m["higher_is_better"], bool) for m in results["metrics"].values())
    # each summary number is printed in the report's row for its mode
    summary = results["summary"]["summary"]
    assert list(summary) == ["rag", "gist", "hybrid", "full"]
    rows = {line.split("|")[1].strip(): line for line in report.splitlines() if line.startswith("| ")}
    for mode, metrics in summary.items():
        for name, value in metrics.items():
            if name in METRICS:
                assert f" {fmt(value, name)} " in rows[mode] or f" {fmt(value, name)} |" in report, (mode, name)
        assert f"{METRICS['ttft_s'].name} {METRICS['ttft_s'].arrow}" in report
    # the plots named in results.json exist, are PNGs, and the report shows them
    assert {"quality_by_mode.png", "ttft_by_mode.png", "needle_heatmap.png"} <= set(results["plots"])
    for name in results["plots"]:
        assert (out / name).read_bytes()[:8] == PNG and f"]({name})" in report
    # gist modes keep fewer KV entries than the full text; full sees the whole document
    assert summary["gist"]["kv_entries"] < summary["full"]["kv_entries"]
    assert summary["full"]["compression_ratio"] < 1.5 < summary["gist"]["compression_ratio"]
    assert set(results["summary"]["needle"]["hybrid"]) == {"160"}
    # the run's own samples file reloads as a dataset
    assert len((out / "samples.jsonl").read_text().splitlines()) == 3


def test_a_crashing_cell_is_recorded_not_lost(tmp_path, dataset, monkeypatch):
    from gist_memory.memory import GistMemory

    real = GistMemory.query

    def flaky(self, question, mode="hybrid", **kwargs):
        if mode == "gist" and "pass key" in question:
            raise RuntimeError("simulated crash")
        return real(self, question, mode=mode, **kwargs)

    monkeypatch.setattr(GistMemory, "query", flaky)
    results = _run(tmp_path, dataset, mode="all")
    failed = [r for r in results["samples"] if r["error"]]
    assert {(r["mode"], r["task"]) for r in failed} == {("gist", "niah")} and len(failed) == 2
    assert all(r["error"].startswith("RuntimeError: simulated crash") for r in failed)
    summary = results["summary"]["summary"]["gist"]
    assert summary["failures"] == 2 and summary["exact_match"] == 0.0 and summary["n"] == 3
    assert "simulated crash" in (tmp_path / "report.md").read_text()


def test_sweep_over_gist_tokens_plots_the_frontier(tmp_path, dataset):
    results = _run(tmp_path, dataset, mode="all", sweep_gist_tokens="1,2")
    assert list(results["summary"]["summary"]) == ["rag", "gist k=1", "gist k=2", "hybrid k=1", "hybrid k=2", "full"]
    ratios = results["summary"]["summary"]
    assert ratios["gist k=1"]["compression_ratio"] > ratios["gist k=2"]["compression_ratio"]
    assert (tmp_path / "sweep_gist_tokens.png").read_bytes()[:8] == PNG


class _FakeJudge(http.server.BaseHTTPRequestHandler):
    """An OpenAI-compatible chat endpoint that answers RAGAS's JSON-mode prompts with fixed verdicts."""

    def do_POST(self):  # noqa: N802 (http.server's naming)
        request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        prompt = json.dumps(request["messages"])
        if "verdict" in prompt:
            content = {"statements": [{"statement": "s", "reason": "supported", "verdict": 1}]}
        elif "rating" in prompt:
            content = {"rating": 4}
        else:
            content = {"statements": ["The answer states one thing."]}
        body = json.dumps({"id": "x", "object": "chat.completion", "created": 0, "model": request["model"],
                           "choices": [{"index": 0, "finish_reason": "stop",
                                        "message": {"role": "assistant", "content": json.dumps(content)}}],
                           "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_llm_judge_scores_through_an_openai_compatible_endpoint(tmp_path, dataset):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _FakeJudge)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        # hybrid: the tiny model's random adapter writes text from caches (its bare base model,
        # which answers rag, mostly emits special tokens, and an empty answer is never judged)
        results = _run(tmp_path, dataset, mode="hybrid", judge=f"http://127.0.0.1:{server.server_port}/v1",
                       judge_model="local-judge")
    finally:
        server.shutdown()
    assert results["notes"] == [] or all("adapter" in n for n in results["notes"])
    answered = [r for r in results["samples"] if r["prediction"].strip()]
    assert answered and all(r["scores"]["answer_accuracy"] == 1.0 for r in answered)
    assert all(r["scores"]["answer_accuracy"] == 0.0 for r in results["samples"] if r not in answered)
    assert all(r["scores"]["faithfulness"] == 1.0 for r in answered)
    assert "answer_accuracy ↑" in (tmp_path / "report.md").read_text()


@pytest.mark.parametrize("argv, message", [
    (["--mode", "fast"], "mode"),
    (["--mode", "hybrid", "--top-k", "0"], "top_k must be at least 1"),
    (["--mode", "hybrid", "--retrieval", "bm25"], "retrieval must be one of fusion, dense"),
    (["--mode", "hybrid", "--sweep-gist-tokens", "2,4", "--adapter", "some/dir"], None),
])
def test_command_line_rejects_bad_options(argv, message, capsys):
    try:
        code = main(argv)
    except SystemExit as exc:
        code = exc.code
    assert code == 2
    if message:
        assert message in capsys.readouterr().err


def test_bad_dataset_is_a_clear_error(tmp_path, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "a", "task": "qa", "context": "c", "question": "q"}\n')
    # the file is checked before any model loads, so this fails fast even with the default model
    assert main(["--mode", "rag", "--dataset", str(bad), "--out", str(tmp_path / "o")]) == 2
    assert capsys.readouterr().err == f"error: {bad}, line 1: missing field 'answer' (every line needs id, task, " \
                                      "context, question, answer)\n"
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    assert main(["--mode", "rag", "--dataset", str(empty)]) == 2
    assert "has no samples" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_help_documents_every_option(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    for option in ("--mode", "--dataset", "--limit", "--model", "--adapter", "--gist_tokens", "--top_k", "--seed",
                   "--out", "--metrics", "--judge", "--sweep_gist_tokens", "--adapter_dir_pattern"):
        assert option in text
    assert "rag (top-k chunk texts in the prompt)" in re.sub(r"\s+", " ", text)


@pytest.mark.slow
def test_offline_ragas_metrics_with_the_local_embedder():
    from evals.metrics import score_offline
    from evals.records import Record
    from gist_memory.embedder import Embedder

    same = Record("a", "theme", "gist", 8, "What is this text about?", "A speech to Congress about the economy.",
                  prediction="A speech to Congress about the economy.", contexts=["chunk one", "needle chunk"],
                  reference_contexts=["needle chunk"])
    other = Record("b", "niah", "rag", 8, "What is the pass key?", "48213", prediction="I like green apples.",
                   contexts=["chunk one"], reference_contexts=["needle chunk"])
    unlike = Record("c", "qa", "rag", 8, "Who wrote it?", "Ann Smith wrote the letter.",
                    prediction="Green apples grow on trees.")
    score_offline([same, other, unlike], Embedder("default", device="cpu"))
    assert same.scores["semantic_similarity"] == pytest.approx(1.0, abs=1e-4)
    assert same.scores["string_similarity"] == 1.0 and same.scores["rouge_l"] == 1.0
    assert same.scores["context_recall"] == 1.0 and other.scores["context_recall"] == 0.0
    assert "semantic_similarity" not in other.scores  # a passkey is scored by exact match only
    assert unlike.scores["semantic_similarity"] < 0.5 and unlike.scores["rouge_l"] == 0.0
    assert "context_recall" not in unlike.scores


@pytest.mark.slow
def test_script_runs_on_the_default_model(tmp_path):
    out = tmp_path / "run"
    proc = subprocess.run([sys.executable, "evals/run.py", "--mode", "hybrid", "--dataset", "niah", "--limit", "1",
                           "--lengths", "300", "--metrics", "basic", "--max-new-tokens", "8", "--progress", "false",
                           "--out", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "| hybrid | 1 | 0 |" in proc.stdout and (out / "report.md").is_file()
    results = json.loads((out / "results.json").read_text())
    assert results["model"]["base"].startswith("SmolLM2-135M-Instruct")
