"""Run an evaluation: ``python evals/run.py --mode all --dataset niah,theme --limit 20``.

Each sample's document is ingested once into one GistMemory (chunked, embedded, compressed),
then its question is asked in every selected mode against that document only, so the modes are
compared on the same ingest, model and machine. ``--help`` lists every option (they are the
fields of :class:`evals.config.EvalConfig`).

From Python, :func:`evaluate` takes the config plus, optionally, a model object (or a function of
k giving one) and an embedder, which is how the tests run it on a tiny model.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import sys
import time
import traceback
from pathlib import Path
from typing import Callable

if __name__ == "__main__" and not __package__:
    # Run as a script: put the repository root first instead of evals/, whose datasets.py would
    # otherwise shadow Hugging Face's `datasets` package for everything imported later.
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

from evals.config import EvalConfig  # noqa: E402
from gist_memory.provenance import git_commit, package_versions  # noqa: E402
from evals.datasets import BUILDERS, build, write_jsonl  # noqa: E402
from evals.metrics import METRICS, PeakMemory, score_basic, score_judge, score_offline  # noqa: E402
from evals.records import Record  # noqa: E402
from evals.report import render_markdown, summarize  # noqa: E402

__all__ = ["evaluate", "main"]

_VERSIONED = ("gist-memory", "torch", "transformers", "peft", "sentence-transformers", "chromadb", "ragas",
              "numpy", "matplotlib")
_NO_ADAPTER_NOTE = ("No trained gist adapter was loaded: gist and hybrid modes ran the base model with "
                    "untrained gist tokens, so their quality is a floor, not the method's result.")


# --------------------------------------------------------------------------- environment
def _environment() -> dict:
    versions = {"python": platform.python_version(), **package_versions(_VERSIONED)}
    return {"date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "git_hash": git_commit(mark_dirty=True) or "unknown", "versions": versions,
            "platform": platform.platform()}


def _device_name(device) -> str:
    import torch

    if device.type == "cuda":
        return f"cuda: {torch.cuda.get_device_name(device)}"
    return f"cpu: {_cpu_name()}, {torch.get_num_threads()} torch threads, {os.cpu_count()} cores visible"


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


# --------------------------------------------------------------------------- models
def _load_model(config: EvalConfig, k: int | None, sweeping: bool):
    from gist_memory.model import GistModel

    adapter = config.adapter
    if sweeping:
        if config.adapter_dir_pattern:
            adapter = config.adapter_dir_pattern.format(k=k)
        elif config.adapter in ("auto", "none"):
            adapter = "none"
        else:
            raise ValueError(f"--sweep-gist-tokens with --adapter {config.adapter}: one adapter serves one k; "
                             "pass --adapter-dir-pattern 'DIR/k{k}' with one adapter per k, or --adapter none "
                             "to sweep the untrained model")
    return GistModel.from_pretrained(config.model, adapter=None if adapter == "none" else adapter,
                                     device=config.device, dtype=config.dtype, num_gist_tokens=k,
                                     chunk_tokens=config.chunk_tokens)


def _model_for(config: EvalConfig, model, k: int | None, sweeping: bool):
    if model is None:
        return _load_model(config, k, sweeping)
    if callable(model) and not hasattr(model, "compress"):
        return model(k)
    if sweeping:
        raise ValueError("a sweep over k needs a model per k: pass model as a function of k, or load by name")
    return model


# --------------------------------------------------------------------------- one cell
def _reference_contexts(memory, sample) -> list[str] | None:
    """The chunk texts that hold (part of) the needle, cut as the memory cuts them."""
    from gist_memory.documents import chunk_text

    start = sample.context.find(sample.needle) if sample.needle else -1
    if start < 0:
        return None
    end = start + len(sample.needle)
    chunks = chunk_text(memory.gm.tokenizer, sample.context, memory.chunk_tokens, memory.chunk_overlap)
    return [sample.context[c.start:c.end] for c in chunks if c.start < end and c.end > start]


def _ask(memory, sample, mode: str, doc_id: str, n_tokens: int, config: EvalConfig, record: Record) -> None:
    from gist_memory.generate import prompt_ids

    gm = memory.gm
    with PeakMemory(gm.device) as peak:
        answer = memory.query(sample.question, mode=mode, doc_ids=[doc_id], top_k=config.top_k,
                              max_new_tokens=config.max_new_tokens)
    record.prediction = answer.text
    record.contexts = [s.text for s in answer.sources] or [sample.context]
    # Answer.kv_entries counts everything held at the first answer token; what stands for the
    # document is that minus the question's own prompt tokens (gist entries, or context tokens).
    asked = gm.gist.prompt_format if mode in ("gist", "hybrid") else "chat"  # as generate wrote the question
    memory_entries = max(answer.kv_entries - len(prompt_ids(gm.tokenizer, sample.question, prompt_format=asked)), 1)
    t = answer.timings
    new_tokens = len(gm.tokenizer(answer.text, add_special_tokens=False)["input_ids"])
    decode_s = t["total_s"] - t["ttft_s"]
    record.cost.update(ttft_s=t["ttft_s"], total_s=t["total_s"],
                       tokens_per_s=(new_tokens - 1) / decode_s if new_tokens > 1 and decode_s > 0 else 0.0,
                       prompt_tokens=answer.prompt_tokens, kv_entries=answer.kv_entries, kv_bytes=answer.kv_bytes,
                       compression_ratio=n_tokens / memory_entries, peak_memory_mb=peak.mb)


def _error(exc: BaseException) -> str:
    where = traceback.extract_tb(exc.__traceback__)[-1] if exc.__traceback__ else None
    at = f" (at {Path(where.filename).name}:{where.lineno})" if where else ""
    return f"{type(exc).__name__}: {exc}{at}"


# --------------------------------------------------------------------------- the run
def evaluate(config: EvalConfig, model=None, embedder=None, command: str | None = None) -> dict:
    """Run the evaluation that ``config`` describes, write its outputs and return results.json's content.

    Args:
        config: what to run (the command line's options).
        model: a GistModel to use instead of loading ``config.model``, or a function of k
            returning one (needed with a k sweep).
        embedder: texts -> vectors (a gist_memory Embedder or any callable) instead of
            ``config.embedder``; also used by the semantic-similarity metric.
        command: the command line to record; by default one rebuilt from ``config``.
    """
    import torch
    from tqdm.auto import tqdm

    from gist_memory.embedder import as_embedder
    from gist_memory.memory import GistMemory

    torch.manual_seed(config.seed)
    started = _environment()  # the commit and date of the code that runs, not of the moment it ends
    sweeping = bool(config.sweep)
    ks = config.sweep or (config.gist_tokens,)
    # Dataset files are read (and a bad line reported) before any model is loaded.
    files = {name: build(name, None, limit=config.limit) for name in config.datasets if name not in BUILDERS}
    embed = as_embedder(embedder if embedder is not None else config.embedder, device=config.device)

    records: list[Record] = []
    notes: list[str] = []
    samples, first_model = None, None
    for i, k in enumerate(ks):
        modes = [m for m in config.modes if i == 0 or m in ("gist", "hybrid")]  # rag and full ignore k
        if not modes:
            continue
        gm = _model_for(config, model, k, sweeping)
        if first_model is None:
            first_model = gm
            samples = _samples(config, gm.tokenizer, files)
            out = Path(config.out or Path("eval_runs") / _dt.datetime.now().strftime("%Y%m%d-%H%M%S"))
            out.mkdir(parents=True, exist_ok=True)
            write_jsonl(samples, out / "samples.jsonl")
            if gm.adapter_identity in ("none", "training") and any(m in ("gist", "hybrid") for m in config.modes):
                notes.append(_NO_ADAPTER_NOTE)
        with GistMemory(model=gm, embedder=embed, top_k=config.top_k, device=config.device,
                        retrieval=config.retrieval) as memory:
            desc = f"k={gm.gist.num_gist_tokens} " if sweeping else ""
            bar = tqdm(total=len(samples) * len(modes), desc=f"{desc}evaluating", unit="answer",
                       disable=not config.progress)
            for sample in samples:
                records += _run_sample(memory, sample, modes, config, bar)
            bar.close()

    score_basic(records)
    if config.metrics == "offline":
        notes += _try("offline RAGAS metrics", lambda: score_offline(records, embed))
    if config.judge:
        notes += _try("LLM-judged RAGAS metrics", lambda: score_judge(records, config.judge, config.judge_model))
    started["device"] = _device_name(first_model.device)
    return _write(config, out, records, notes, first_model, started, command)


def _samples(config: EvalConfig, tokenizer, files: dict) -> list:
    samples = []
    for name in config.datasets:
        samples += files.get(name) or build(name, tokenizer, limit=config.limit, seed=config.seed,
                                            lengths=config.length_list, depths=config.depth_list,
                                            theme_tokens=config.theme_tokens)
    seen: set[str] = set()
    for s in samples:
        if s.id in seen:
            raise ValueError(f"sample id {s.id!r} appears twice across datasets {config.dataset!r}; "
                             "give every line of a JSONL file its own id")
        seen.add(s.id)
    return samples


def _run_sample(memory, sample, modes: list[str], config: EvalConfig, bar) -> list[Record]:
    gm = memory.gm
    n_tokens = len(gm.tokenizer(sample.context, add_special_tokens=False)["input_ids"])
    base = dict(sample_id=sample.id, task=sample.task, gist_tokens=gm.gist.num_gist_tokens, question=sample.question,
                reference=sample.answer, context_tokens=n_tokens,
                context_length=int(sample.meta.get("context_length", n_tokens)), needle_position=sample.needle_position)
    records = [Record(mode=m, **base) for m in modes]
    try:
        t0 = time.perf_counter()
        doc_id = memory.add([{"text": sample.context, "id": f"eval-{sample.id}"}], progress=False)[0]
        ingest = (time.perf_counter() - t0) / max(n_tokens, 1) * 1000
        references = _reference_contexts(memory, sample)
    except Exception as exc:  # one sample's crash is a recorded failure, not a lost run
        for r in records:
            r.error = "ingest: " + _error(exc)
        bar.update(len(records))
        return records
    for r in records:
        bar.set_postfix_str(f"{sample.id} {r.mode}", refresh=False)
        r.reference_contexts = references
        r.cost["ingest_s_per_1k_tokens"] = ingest
        try:
            _ask(memory, sample, r.mode, doc_id, n_tokens, config, r)
        except Exception as exc:
            r.error = _error(exc)
        bar.update(1)
    return records


def _try(what: str, score: Callable[[], None]) -> list[str]:
    """Run a scorer; a failure becomes a note in the report instead of losing the run's answers."""
    try:
        score()
    except Exception as exc:
        message = f"{what} were not computed: {_error(exc)}"
        print(f"warning: {message}", file=sys.stderr)
        return [message]
    return []


def _write(config: EvalConfig, out: Path, records: list[Record], notes: list[str], gm, environment: dict,
           command: str | None) -> dict:
    from evals.plots import write_plots

    summaries = summarize(records, sweep=bool(config.sweep))
    results = {
        "schema_version": 1,
        "command": command or config.command(),
        "out": str(out),
        "config": config.to_dict(),
        "environment": environment,
        "model": {"base": gm.base_identity, "adapter": gm.adapter_identity, "gist_tokens": gm.gist.num_gist_tokens,
                  "chunk_tokens": gm.gist.chunk_tokens, "dtype": str(gm.dtype).replace("torch.", ""),
                  "kv_bytes_per_token": gm.kv_bytes_per_token()},
        "dataset": {"names": config.datasets, "n_samples": len({r.sample_id for r in records}),
                    "file": "samples.jsonl"},
        "metrics": {name: {"higher_is_better": m.higher_is_better, "kind": m.kind, "aggregation": m.aggregation,
                           "description": m.description} for name, m in METRICS.items()},
        "notes": notes,
        "summary": summaries,
        "plots": write_plots(summaries, out),
        "samples": [r.to_dict() for r in records],
    }
    (out / "results.json").write_text(json.dumps(results, indent=1, ensure_ascii=False))
    (out / "report.md").write_text(render_markdown(results))
    return results


# --------------------------------------------------------------------------- command line
def _underscored(argv: list[str]) -> list[str]:
    """``--top-k 3`` -> ``--top_k 3``: accept the dashed spelling for jsonargparse's field names."""
    fixed = []
    for arg in argv:
        if arg.startswith("--") and len(arg) > 2:
            name, eq, value = arg[2:].partition("=")
            arg = "--" + name.replace("-", "_") + eq + value
        fixed.append(arg)
    return fixed


def main(argv: list[str] | None = None) -> int:
    """Parse the command line into an EvalConfig, run it, print the table; 2 on a usage error."""
    from jsonargparse import ArgumentParser

    from gist_memory.errors import GistMemoryError

    argv = list(sys.argv[1:] if argv is None else argv)
    parser = ArgumentParser(prog="python evals/run.py", description=EvalConfig.__doc__.split("\n\n")[1])
    parser.add_class_arguments(EvalConfig)  # the dataclass's fields and docstring are the options and help
    try:
        config = EvalConfig(**parser.parse_args(_underscored(argv)).as_dict())
        results = evaluate(config, command="python evals/run.py " + " ".join(argv))
    except (ValueError, GistMemoryError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    tables = render_markdown(results).split("## By task")[0]
    print(f"{tables}Full report: {Path(results['out']) / 'report.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
