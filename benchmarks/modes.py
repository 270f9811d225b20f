"""The four query modes side by side on one document: time to first token and KV bytes.

One document of real prose (the first English corpus document at least ``tokens`` long, cut to
that many tokens) is ingested once into a GistMemory with its defaults; then the same questions
are asked in every mode, and the table reports medians over them. A benchmark, not a test: the
numbers depend on the machine, so each run prints the conditions it ran under.

    OMP_NUM_THREADS=2 python benchmarks/modes.py
"""

from __future__ import annotations

import datetime
import os
import platform
import statistics
import time

QUESTIONS = ("How much did the total wealth of the country grow between 1860 and 1890?",
             "What does the message say about the mileage of railways?",
             "What is said about the tariff and the prices of goods?")


def one_document(tokenizer, n_tokens: int):
    """(doc_id, text): the first English corpus document of at least ``n_tokens`` tokens, cut to that many."""
    from gist_memory.data.corpus import load_documents
    from gist_memory.documents import chunk_text

    for doc in load_documents(language="en"):
        first = chunk_text(tokenizer, doc.text, n_tokens)[0]
        if len(first.token_ids) == n_tokens:
            return doc.doc_id, doc.text[first.start:first.end]
    raise RuntimeError(f"no English corpus document holds {n_tokens} tokens")


def main(tokens: int = 4096, repeats: int = 2, top_k: int = 4, max_new_tokens: int = 16, model: str = "default",
         device: str = "cpu") -> str:
    """Print (and return) a Markdown table of time to first token and KV bytes per mode.

    Args:
        tokens: length of the document, in model tokens.
        repeats: times each question is asked per mode (after one warm-up query per mode).
        top_k: chunks retrieved in rag and hybrid modes.
        max_new_tokens: tokens generated per answer.
        model: 'default' (embedded SmolLM2-135M-Instruct), a local directory or a cached Hugging Face id.
        device: 'cpu', 'cuda' ...
    """
    import torch

    from gist_memory import GistMemory, __version__
    from gist_memory.units import human_bytes
    from gist_memory.config import MODES
    from gist_memory.provenance import versions

    with GistMemory(model=model, device=device, top_k=top_k) as mem:
        doc_id, text = one_document(mem.gm.tokenizer, tokens)
        start = time.perf_counter()
        mem.add({"text": text, "id": doc_id}, progress=False)
        ingest_s = time.perf_counter() - start
        stats = mem.stats()
        rows = {}
        for mode in MODES:
            mem.query(QUESTIONS[0], mode=mode, max_new_tokens=2)  # warm-up: first-call allocations
            answers = [mem.query(q, mode=mode, max_new_tokens=max_new_tokens) for q in QUESTIONS * repeats]
            rows[mode] = {"ttft_s": statistics.median(a.timings["ttft_s"] for a in answers),
                          "retrieval_s": statistics.median(a.timings["retrieval_s"] for a in answers),
                          "prompt_tokens": statistics.median(a.prompt_tokens for a in answers),
                          "kv_entries": statistics.median(a.kv_entries for a in answers),
                          "kv_bytes": statistics.median(a.kv_bytes for a in answers)}
        identity, adapter, dtype = mem.gm.base_identity, mem.gm.adapter_identity, str(mem.gm.dtype)
    full = rows["full"]
    lines = ["| mode | time to first token | of which retrieval | prefilled tokens | KV entries | KV bytes | "
             "TTFT vs full | KV vs full |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for mode, r in rows.items():
        lines.append(f"| {mode} | {r['ttft_s']:.3f} s | {r['retrieval_s']:.3f} s | {r['prompt_tokens']:.0f} | "
                     f"{r['kv_entries']:.0f} | {r['kv_bytes']:,.0f} ({human_bytes(r['kv_bytes'])}) | "
                     f"{full['ttft_s'] / r['ttft_s']:.1f}x faster | {full['kv_bytes'] / r['kv_bytes']:.1f}x smaller |")
    commit = versions().get("git", "unknown")[:7]
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    note = (f"Document {doc_id}, cut to {stats['tokens']} tokens: {stats['chunks']} chunks, {stats['gist_tokens']} "
            f"gist tokens, ingested in {ingest_s:.1f} s. Medians over {len(QUESTIONS) * repeats} questions per mode, "
            f"top_k={top_k}, max_new_tokens={max_new_tokens}. Model {identity}, adapter {adapter}, "
            f"{dtype.replace('torch.', '')}, {device}, {torch.get_num_threads()} thread(s) "
            f"({platform.processor() or platform.machine()}, {os.cpu_count()} cores, load average {load:.1f} at the "
            f"end), gist-memory {__version__} @ {commit}, {datetime.date.today()}.")
    table = "\n".join(lines) + f"\n\n{note}\n"
    print(table)
    return table


if __name__ == "__main__":
    from jsonargparse import CLI

    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    CLI(main, as_positional=False)
