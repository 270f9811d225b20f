"""How much memory a gist cache takes against the full context's KV cache, measured.

For each context length, the first N tokens of real prose (State of the Union addresses from
``gist_memory.data.corpus``) are split into chunks and compressed with k gist tokens a chunk; the table
reports the bytes of the kept gist KV and, with ``--measure_full``, the bytes of the KV cache a
plain prefill of the whole context leaves behind (else that size is the cache's bytes per entry
times the context tokens). Gist KV bytes do not depend on what an adapter learned, so the untrained
gist rows of the base model measure the same sizes as a trained adapter.

    OMP_NUM_THREADS=1 python benchmarks/kv_table.py --measure_full true
"""

from __future__ import annotations

import datetime
import os
import platform
import time

import torch

from gist_memory import GistCache, GistModel, __version__
from gist_memory.units import human_bytes
from gist_memory.compress import compress_chunks, split_tokens
from gist_memory.data.corpus import load_documents
from gist_memory.provenance import versions


def prose_ids(tokenizer, n_tokens: int) -> list[int]:
    """At least ``n_tokens`` token ids of English prose, documents joined in corpus order."""
    text = ""
    for doc in load_documents(language="en"):
        text += doc.text + "\n\n"
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        if len(ids) >= n_tokens:
            return ids[:n_tokens]
    raise RuntimeError(f"the English corpus holds fewer than {n_tokens} tokens")


@torch.no_grad()
def full_kv_bytes(gm: GistModel, ids: list[int]) -> tuple[int, float]:
    """Bytes of the KV cache after a plain prefill of ``ids``, and the prefill's seconds."""
    start = time.perf_counter()
    out = gm.model(input_ids=torch.tensor([ids], device=gm.device), use_cache=True, logits_to_keep=1)
    seconds = time.perf_counter() - start
    return sum(layer.keys.nbytes + layer.values.nbytes for layer in out.past_key_values.layers), seconds


def main(lengths: list[int] = [512, 1024, 2048, 4096, 8192], gist_tokens: list[int] = [8, 4, 2],
         chunk_tokens: int = 512, model: str = "default", device: str = "cpu", dtype: str = "float32",
         batch_size: int = 8, measure_full: bool = False) -> str:
    """Print (and return) a Markdown table of gist KV bytes against full-context KV bytes.

    Args:
        lengths: context lengths in tokens.
        gist_tokens: values of k, gist tokens per chunk, one block of rows each.
        chunk_tokens: tokens per chunk (512: what the recipe trains on).
        model: 'default', a local model directory or a Hugging Face id in the local cache.
        device: 'cpu', 'cuda', ...
        dtype: 'float32', 'bfloat16' ...
        batch_size: chunks compressed per forward pass.
        measure_full: run a plain prefill of each whole context and measure its KV cache.
    """
    base = GistModel.from_pretrained(model, adapter=None, device=device, dtype=dtype)
    ids = prose_ids(base.tokenizer, max(lengths))
    full = {n: full_kv_bytes(base, ids[:n]) if measure_full else None for n in lengths}
    rows = ["| context tokens | k | chunks | gist KV entries | gist KV bytes | full KV bytes | ratio | compress s |"
            + (" full prefill s |" if measure_full else ""),
            "|---:|---:|---:|---:|---:|---:|---:|---:|" + ("---:|" if measure_full else "")]
    for k in gist_tokens:
        gm = GistModel.from_pretrained(model, adapter=None, device=device, dtype=dtype, num_gist_tokens=k,
                                       chunk_tokens=chunk_tokens)
        for n in lengths:
            chunks = split_tokens(ids[:n], chunk_tokens)
            start = time.perf_counter()
            cache = GistCache.concat(compress_chunks(gm, chunks, batch_size=batch_size))
            seconds = time.perf_counter() - start
            full_bytes = full[n][0] if measure_full else cache.full_context_nbytes
            row = (f"| {n} | {k} | {len(chunks)} | {cache.num_entries} | {cache.nbytes:,} "
                   f"({human_bytes(cache.nbytes)}) | {full_bytes:,} ({human_bytes(full_bytes)}) "
                   f"| {full_bytes / cache.nbytes:.0f}x | {seconds:.1f} |")
            rows.append(row + (f" {full[n][1]:.1f} |" if measure_full else ""))
    commit = versions().get("git", "unknown")[:7]
    note = (f"{base.base_identity}, {dtype}, {device}, chunk {chunk_tokens} tokens, batch {batch_size}, "
            f"{torch.get_num_threads()} thread(s) ({platform.processor() or platform.machine()}), "
            f"gist-memory {__version__} @ {commit}, {datetime.date.today()}")
    table = "\n".join(rows) + f"\n\n{note}\n"
    print(table)
    return table


if __name__ == "__main__":
    from jsonargparse import CLI

    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    CLI(main, as_positional=False)
