"""Nothing lost (docs/design.md invariant 6), with real processes: a writer killed with SIGKILL mid-``add``
leaves a readable store that a re-run completes, and a read-only process can query the store
while another process writes to it."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from gist_memory import GistMemory
from gist_memory.compress import compress_chunks
from gist_memory.documents import chunk_text
from tiny import HashEmbedder, tiny_documents, tiny_gist_model, tiny_tokenizer

TESTS = Path(__file__).parent
N_DOCS, SENTENCES = 6, 10

# The writer: announces each cache file and each catalogue commit on stdout, so the test can
# kill it at a known point of the ingest (the kill itself lands wherever the writer is by then).
WRITER = r"""
import sys
sys.path.insert(0, sys.argv[1])
from tiny import HashEmbedder, tiny_documents, tiny_gist_model, tiny_tokenizer
from gist_memory import GistMemory
from gist_memory.store import GistStore

def announce(name):
    original = getattr(GistStore, name)
    def wrapped(self, *args):
        original(self, *args)
        print(name, flush=True)
    setattr(GistStore, name, wrapped)

announce("save_cache")
announce("put_document")
mem = GistMemory(persist_dir=sys.argv[2], model=tiny_gist_model(), embedder=HashEmbedder())
mem.add(tiny_documents(int(sys.argv[3]), sentences=int(sys.argv[4])), batch_size=int(sys.argv[5]), progress=False)
print("done", flush=True)
"""


@pytest.fixture(scope="module")
def gm():
    return tiny_gist_model()


def start_writer(path: Path, n_docs: int, sentences: int, batch_size: int) -> subprocess.Popen:
    import os

    args = [sys.executable, "-c", WRITER, str(TESTS), str(path), str(n_docs), str(sentences), str(batch_size)]
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")  # one core each: the test reads beside it
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)


def wait_for(proc: subprocess.Popen, event: str, count: int) -> None:
    seen = 0
    for line in proc.stdout:
        seen += line.strip() == event
        if seen == count:
            return
    raise AssertionError(f"the writer exited (code {proc.wait()}) before {count} {event} events")


@pytest.mark.parametrize("event, count", [("save_cache", 3), ("put_document", 2)])
def test_add_killed_midway_resumes_with_nothing_lost_and_no_duplicates(tmp_path, gm, event, count):
    path = tmp_path / "store"
    writer = start_writer(path, N_DOCS, SENTENCES, batch_size=2)
    wait_for(writer, event, count)
    writer.send_signal(signal.SIGKILL)
    assert writer.wait() == -signal.SIGKILL
    check_reopened_and_completed(path, gm)


def kill_points(n: int, seed: int = 13) -> list[tuple[str, int, float]]:
    """``n`` kill points of an add of N_DOCS documents in batches of 2: after the ``count``-th
    cache file or catalogue commit, plus a random delay that lands the kill anywhere after it
    (in a cache write, the vector upsert, the SQLite commit, between batches ...)."""
    import random

    rng = random.Random(seed)
    n_chunks = sum(len(chunk_text(tiny_tokenizer(), d["text"], 48))
                   for d in tiny_documents(N_DOCS, sentences=SENTENCES))
    return [(e, rng.randint(1, n_chunks if e == "save_cache" else N_DOCS - 1), rng.uniform(0, 0.05))
            for e in rng.choices(["save_cache", "put_document"], k=n)]


@pytest.mark.fault
@pytest.mark.parametrize("event, count, delay", kill_points(20))
def test_sigkill_at_twenty_random_points_of_an_add(tmp_path, gm, event, count, delay):
    """The fault suite (issue 13): after each kill the store reopens readable, and re-adding the
    batch completes it with no duplicate, orphan or missing cache (a kill that lands after the
    add finished is checked the same way)."""
    import time

    path = tmp_path / "store"
    writer = start_writer(path, N_DOCS, SENTENCES, batch_size=2)
    wait_for(writer, event, count)
    time.sleep(delay)
    writer.send_signal(signal.SIGKILL)
    writer.wait()
    check_reopened_and_completed(path, gm)


def check_reopened_and_completed(path: Path, gm) -> None:
    docs = tiny_documents(N_DOCS, sentences=SENTENCES)

    with GistMemory(persist_dir=path, model=gm, embedder=HashEmbedder()) as mem:
        # Readable as it was left: every listed document is whole and answers.
        partial = mem.list_documents()
        assert len(partial) <= N_DOCS
        assert [d["doc_id"] for d in partial] == [f"doc{i}" for i in range(len(partial))]
        for d in partial:
            ans = mem.query("topic", mode="gist", doc_ids=d["doc_id"], max_new_tokens=1)
            assert len(ans.sources) == d["chunks"]

        assert mem.add(docs, progress=False) == [f"doc{i}" for i in range(N_DOCS)]

        chunks = [c for d in docs for c in chunk_text(gm.tokenizer, d["text"], gm.gist.chunk_tokens)]
        stats = mem.stats()
        assert (stats["documents"], stats["chunks"]) == (N_DOCS, len(chunks))
        assert mem.index._collection.count() == len(chunks)  # no duplicate vectors
        stored = mem.store.chunks_of([f"doc{i}" for i in range(N_DOCS)])
        on_disk = {p.stem for p in (path / "caches").rglob("*.safetensors")}
        assert on_disk == {c["cache_id"] for c in stored}  # no orphans, none missing
        assert not list(path.rglob(".tmp-*"))
        fresh = compress_chunks(gm, [c.token_ids for c in chunks])
        for rec, want in zip(stored, fresh):
            got = mem.store.load_cache(rec["cache_id"], gm.cache_identity)
            assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(got.keys + got.values, want.keys + want.values))
        assert mem.retrieve("topic5 orchard", top_k=1)[0].doc_id == "doc5"


def test_a_read_only_process_queries_while_another_process_adds(tmp_path, gm):
    path = tmp_path / "store"
    n_docs = 10
    writer = start_writer(path, n_docs, SENTENCES, batch_size=1)
    wait_for(writer, "put_document", 1)
    seen = []
    with GistMemory(persist_dir=path, model=gm, embedder=HashEmbedder(), read_only=True) as reader:
        while writer.poll() is None:
            seen.append(len(reader.list_documents()))
            mode = ("hybrid", "rag")[len(seen) % 2]
            ans = reader.query("topic0 river", mode=mode, max_new_tokens=1)
            assert ans.sources and all(s.doc_id in {f"doc{i}" for i in range(n_docs)} for s in ans.sources)
        assert writer.wait() == 0 and "done" in writer.stdout.read()
        assert seen and seen[0] < n_docs and seen == sorted(seen)
        assert len(reader.list_documents()) == n_docs
        assert reader.retrieve("topic9 signal", top_k=1)[0].doc_id == "doc9"
