"""GistMemory end to end on a tiny random model and a hashing embedder (no downloads, seconds)."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import re
import subprocess
import threading
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace

import pytest
import torch

from gist_memory import Answer, CacheMismatchError, Document, GistMemory, InputError
from gist_memory.cache import GistCache
from gist_memory.compress import compress_chunks
from gist_memory.generate import prompt_ids
from gist_memory.config import MODES
from gist_memory.store import cache_key
from tiny import HashEmbedder, tiny_documents, tiny_gist_model

K, CHUNK = 4, 48  # tiny_gist_model: 4 gist tokens per chunk of at most 48 byte tokens
CONTRACT = ("The supplier contract renews automatically every March unless either party cancels in writing. "
            "Renewal terms stay the same. ")
ZEBRA = "Zebras graze on the savanna grass at dawn and rest in the shade of acacia trees at noon. "
QUESTION = "When does the supplier contract renew?"


@pytest.fixture(scope="module")
def gm():
    return tiny_gist_model(k=K, chunk_tokens=CHUNK)


def open_memory(path, gm, **kw):
    return GistMemory(persist_dir=path, model=gm, embedder=kw.pop("embedder", HashEmbedder()), **kw)


@pytest.fixture
def mem(tmp_path, gm):
    m = open_memory(tmp_path / "store", gm, top_k=2)
    m.add([{"text": CONTRACT * 2, "id": "contract", "metadata": {"kind": "legal"}},
           {"text": ZEBRA * 3, "id": "zebra", "metadata": {"kind": "nature"}}], progress=False)
    yield m
    m.close()


@contextlib.contextmanager
def prefills(gm):
    """Token ids of every forward pass through the model (the first one of a query is its prefill)."""
    calls = []

    def hook(module, args, kwargs):
        if kwargs.get("input_ids") is not None:
            calls.append(kwargs["input_ids"][0].tolist())

    handle = gm.model.register_forward_pre_hook(hook, with_kwargs=True)
    try:
        yield calls
    finally:
        handle.remove()


# ---------------------------------------------------------------------------------------------- modes
@pytest.mark.parametrize("mode", MODES)
def test_each_mode_answers(mem, gm, mode):
    ans = mem.query(QUESTION, mode=mode, max_new_tokens=4)
    assert isinstance(ans, Answer) and isinstance(ans.text, str) and ans.mode == mode
    assert ans.sources and ans.sources[0].doc_id == "contract"
    assert set(ans.timings) == {"retrieval_s", "memory_s", "ttft_s", "generation_s", "total_s"}
    assert all(v >= 0 for v in ans.timings.values())
    assert ans.timings["retrieval_s"] + ans.timings["memory_s"] <= ans.timings["ttft_s"] <= ans.timings["total_s"]
    assert ans.kv_bytes == ans.kv_entries * gm.kv_bytes_per_token() > 0


@pytest.mark.parametrize("mode", ["gist", "hybrid"])
def test_gist_and_hybrid_prefill_only_the_question(mem, gm, mode):
    with prefills(gm) as calls:
        ans = mem.query(QUESTION, mode=mode, max_new_tokens=3)
    question_ids = prompt_ids(gm.tokenizer, QUESTION)
    assert calls[0] == question_ids and ans.prompt_tokens == len(question_ids)
    assert all(len(c) == 1 for c in calls[1:])  # then one token at a time
    prefilled = gm.tokenizer.decode(sum(calls, []))
    assert all(s.text.strip()[:20] not in prefilled for s in ans.sources)
    assert ans.kv_entries == len(ans.sources) * K + ans.prompt_tokens


@pytest.mark.parametrize("mode", ["rag", "full"])
def test_rag_and_full_prefill_the_text(mem, gm, mode):
    with prefills(gm) as calls:
        ans = mem.query(QUESTION, mode=mode, max_new_tokens=3)
    prefilled = gm.tokenizer.decode(calls[0])
    assert ans.prompt_tokens == len(calls[0]) > len(prompt_ids(gm.tokenizer, QUESTION))
    expected = CONTRACT * 2 if mode == "full" else "\n\n".join(s.text for s in ans.sources)
    assert expected in prefilled
    assert ans.kv_entries == ans.prompt_tokens


def test_gist_mode_reads_every_chunk_hybrid_only_top_k(mem):
    gist = mem.query(QUESTION, mode="gist", max_new_tokens=2)
    chunks = mem.list_documents()[0]["chunks"]
    assert [s.chunk_index for s in gist.sources] == list(range(chunks))
    hybrid = mem.query(QUESTION, mode="hybrid", max_new_tokens=2)
    assert len(hybrid.sources) == 2 and all(s.score is not None for s in hybrid.sources)


def test_retrieved_chunks_are_used_in_document_order(mem):
    best_first = mem.retrieve(QUESTION, top_k=3)
    ans = mem.query(QUESTION, mode="rag", top_k=3, max_new_tokens=2)
    docs = list(dict.fromkeys(s.doc_id for s in best_first))
    assert [(s.doc_id, s.chunk_index) for s in ans.sources] == sorted(
        ((s.doc_id, s.chunk_index) for s in best_first), key=lambda p: (docs.index(p[0]), p[1]))


def test_dense_retrieval_orders_by_similarity(tmp_path, gm):
    with open_memory(tmp_path / "dense", gm, retrieval="dense") as dense:
        dense.add(tiny_documents(3), progress=False)
        best_first = dense.retrieve("topic2 lamp", top_k=5)
    assert len(best_first) == 5
    assert [s.score for s in best_first] == sorted((s.score for s in best_first), reverse=True)


def test_stream_yields_the_same_answer(mem):
    whole = mem.query(QUESTION, mode="hybrid", max_new_tokens=6)
    stream = mem.query(QUESTION, mode="hybrid", max_new_tokens=6, stream=True)
    assert stream.answer is None
    assert "".join(stream) == stream.answer.text == whole.text == stream.generation.text
    assert stream.answer.prompt_tokens == whole.prompt_tokens and stream.answer.sources == whole.sources


def test_filters_by_metadata_and_document(tmp_path, gm):
    with open_memory(tmp_path / "s", gm, top_k=3) as mem:
        mem.add(tiny_documents(6), progress=False)
        odd = mem.query("topic1 river", mode="rag", where={"group": "odd"}, max_new_tokens=1)
        assert odd.sources and {s.metadata["group"] for s in odd.sources} == {"odd"}
        two = mem.retrieve("topic1 river", doc_ids="doc2")
        assert two and {s.doc_id for s in two} == {"doc2"}
        both = mem.query("topic1", mode="hybrid", where={"n": {"$gte": 4}}, doc_ids=["doc1", "doc4"], max_new_tokens=1)
        assert {s.doc_id for s in both.sources} == {"doc4"}
        gist = mem.query("anything", mode="gist", doc_ids=["doc3", "doc1"], max_new_tokens=1)
        by_doc = {d["doc_id"]: d["chunks"] for d in mem.list_documents()}
        assert [s.doc_id for s in gist.sources] == ["doc3"] * by_doc["doc3"] + ["doc1"] * by_doc["doc1"]
        with pytest.raises(InputError, match="no documents"):
            mem.query("x", mode="full", doc_ids=["nope"])


def test_full_mode_past_the_window_is_a_clear_error(tmp_path, gm):
    window = gm.model.config.max_position_embeddings
    with open_memory(tmp_path / "s", gm) as mem:
        mem.add({"text": ZEBRA * (window // len(ZEBRA) + 2), "id": "long"}, progress=False)
        with pytest.raises(InputError, match=f"window of {window}"):
            mem.query("Where do zebras rest?", mode="full")
        assert mem.query("Where do zebras rest?", mode="gist", max_new_tokens=2).prompt_tokens < 64


def test_empty_memory_is_a_clear_error(tmp_path, gm):
    with open_memory(tmp_path / "s", gm) as mem:
        with pytest.raises(InputError, match="add"):
            mem.query(QUESTION)


# ---------------------------------------------------------------------------------------------- ingest
def test_chunks_are_token_exact_and_cover_the_text(mem, gm):
    for doc in mem.list_documents():
        chunks = mem.store.chunks_of([doc["doc_id"]])
        text = mem.store.document(doc["doc_id"])["text"]
        assert "".join(c["text"] for c in chunks) == text
        assert all(c["n_tokens"] <= CHUNK for c in chunks)
        assert sum(c["n_tokens"] for c in chunks) == doc["tokens"] == len(gm.tokenizer(text)["input_ids"])


def test_chunk_size_and_overlap_are_configurable(tmp_path, gm):
    with open_memory(tmp_path / "s", gm, chunk_tokens=32, chunk_overlap=8) as mem:
        mem.add({"text": CONTRACT, "id": "c"}, progress=False)
        n = len(CONTRACT.encode())
        chunks = mem.store.chunks_of(["c"])
        assert len(chunks) == -(-(n - 8) // 24)
        assert chunks[0]["text"][-8:] == chunks[1]["text"][:8]
    with pytest.raises(ValueError, match="chunk_tokens"):
        open_memory(tmp_path / "t", gm, chunk_tokens=CHUNK + 1)
    with pytest.raises(ValueError, match="chunk_overlap"):
        open_memory(tmp_path / "u", gm, chunk_tokens=16, chunk_overlap=16)


def test_caches_are_content_addressed_and_match_a_fresh_compression(mem, gm):
    chunks = mem.store.chunks_of(["contract", "zebra"])
    for c in chunks[:3]:
        ids = gm.tokenizer(c["text"], add_special_tokens=False)["input_ids"]
        assert c["cache_id"] == cache_key(gm.cache_identity, ids)
        stored = GistCache.load(mem.store.cache_path(c["cache_id"]), expect=gm.cache_identity)
        fresh = compress_chunks(gm, [ids])[0]
        assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(stored.keys + stored.values, fresh.keys + fresh.values))


def test_accepts_strings_dicts_and_ecosystem_documents(tmp_path, gm):
    class LlamaLike:
        def __init__(self, text):
            self.metadata = {"from": "llama"}
            self._text = text

        def get_content(self):
            return self._text

    items = ["a plain string about lamps",
             {"text": "a dict about harbors", "metadata": {"from": "dict"}, "id": "harbor"},
             SimpleNamespace(page_content="a langchain page about orchards", metadata={"from": "langchain", "id": "lc"}),
             LlamaLike("a llamaindex node about copper"),
             SimpleNamespace(text="a node with text about bridges", metadata={"doc_id": "bridge"}),
             Document("our own document about valleys", {"from": "ours"})]
    with open_memory(tmp_path / "s", gm) as mem:
        ids = mem.add(items, metadata={"batch": 7, "from": "default"}, progress=False)
        assert ids[1:3] == ["harbor", "lc"] and ids[4] == "bridge" and ids[0].startswith("doc-")
        listed = {d["doc_id"]: d["metadata"] for d in mem.list_documents()}
        assert list(listed) == ids
        assert listed["harbor"] == {"from": "dict", "batch": 7}
        assert listed[ids[0]] == {"from": "default", "batch": 7}
        assert listed[ids[3]]["from"] == "llama"
        assert mem.retrieve("orchards langchain", top_k=1)[0].doc_id == "lc"


@pytest.mark.parametrize("items, match", [
    ([], "empty list"),
    ("", "empty"),
    (["fine text", "   "], "item 1"),
    ([42], "cannot read a document from a int"),
    ([{"txt": "typo"}], "'text' key"),
    ([{"text": "x", "metadata": {"cache_id": 1}}], "reserved"),
    ([{"text": "a", "id": "same"}, {"text": "b", "id": "same"}], "two different texts"),
])
def test_bad_input_is_refused_before_anything_is_written(tmp_path, gm, items, match):
    with open_memory(tmp_path / "s", gm) as mem:
        with pytest.raises(InputError, match=match):
            mem.add(items, progress=False)
        assert mem.stats()["documents"] == 0 and mem.stats()["caches"] == 0


def test_unknown_mode_lists_the_valid_ones(mem):
    with pytest.raises(InputError, match="valid modes are rag, gist, hybrid, full"):
        mem.query(QUESTION, mode="summary")
    with pytest.raises(InputError, match="valid modes are hybrid, rag"):
        mem.answer_from_sources(QUESTION, ["contract::0"], mode="full")
    with pytest.raises(InputError, match="question is empty"):
        mem.query("  ")


def test_adding_a_document_again_is_idempotent(mem):
    before, vectors = mem.stats(), mem.index._collection.count()
    ids = mem.add([{"text": CONTRACT * 2, "id": "contract"}, {"text": ZEBRA * 3, "id": "zebra"}], progress=False)
    assert ids == ["contract", "zebra"]
    assert mem.add("same text twice") == mem.add(["same text twice", "same text twice"], progress=False)[:1]
    after = mem.stats()
    assert (after["documents"], after["chunks"]) == (before["documents"] + 1, before["chunks"] + 1)
    assert mem.index._collection.count() == vectors + 1


def test_an_id_with_another_text_is_refused_and_nothing_changes(mem):
    with pytest.raises(InputError, match="already stored with another text"):
        mem.add({"text": "a different contract", "id": "contract"}, progress=False)
    assert mem.store.document("contract")["text"] == CONTRACT * 2


def test_identical_chunks_are_stored_once_and_survive_deleting_one_copy(mem):
    mem.add({"text": ZEBRA * 3, "id": "zebra-copy"}, progress=False)
    stats = mem.stats()
    assert stats["caches"] < stats["chunks"]
    mem.delete("zebra")
    ans = mem.query("zebras", mode="gist", doc_ids="zebra-copy", max_new_tokens=2)
    assert all(mem.store.has_cache(s.cache_id) for s in ans.sources)


def test_delete_removes_the_document_its_vectors_and_its_caches(mem):
    caches = [c["cache_id"] for c in mem.store.chunks_of(["zebra"])]
    mem.delete("zebra")
    assert [d["doc_id"] for d in mem.list_documents()] == ["contract"]
    assert {s.doc_id for s in mem.retrieve("zebras savanna", top_k=10)} == {"contract"}
    assert not any(mem.store.has_cache(c) for c in caches)
    with pytest.raises(InputError, match="no document 'zebra'"):
        mem.delete("zebra")


def test_stats_and_the_self_describing_store(mem, gm):
    s = mem.stats()
    assert s["documents"] == 2 and s["gist_tokens"] == s["chunks"] * K
    assert s["compression_ratio"] == pytest.approx(s["tokens"] / s["gist_tokens"])
    assert s["bytes_on_disk"] > 0 and s["model"] == gm.base_identity
    manifest = json.loads((mem.persist_dir / "store.json").read_text())
    assert manifest["format"] == "gist-memory-store"
    assert manifest["build"]["base_model"] == gm.base_identity and manifest["build"]["adapter"] == gm.adapter_identity
    assert manifest["build"]["num_gist_tokens"] == K and manifest["build"]["chunk_tokens"] == CHUNK
    assert manifest["build"]["embedder"] == HashEmbedder.identity
    assert {"gist_memory", "torch", "transformers", "chromadb"} <= set(manifest["versions"])
    assert manifest["vector_index"]["kind"] == "embedded"


# ---------------------------------------------------------------------------------------------- reopening
def test_reopen_and_load_answer_the_same(tmp_path, gm):
    path = tmp_path / "s"
    with open_memory(path, gm) as mem:
        mem.add(tiny_documents(3), progress=False)
        expected = mem.query("topic2 lamp", mode="gist", doc_ids="doc2", max_new_tokens=5)
        ranking = sorted((s.chunk_id, s.score) for s in mem.retrieve("topic2 lamp", top_k=100))
    with pytest.raises(InputError, match="GistModel object"):
        GistMemory.load(path)
    with GistMemory.load(path, model=gm, embedder=HashEmbedder()) as again:
        got = again.query("topic2 lamp", mode="gist", doc_ids="doc2", max_new_tokens=5)
        assert sorted((s.chunk_id, s.score) for s in again.retrieve("topic2 lamp", top_k=100)) == ranking
    assert (got.text, got.sources) == (expected.text, expected.sources)


def test_store_of_another_model_is_refused_unless_rebuilt(tmp_path, gm):
    path = tmp_path / "s"
    with open_memory(path, gm) as mem:
        mem.add(tiny_documents(2), progress=False)
    other = tiny_gist_model(k=K, chunk_tokens=CHUNK, seed=1)
    with pytest.raises(CacheMismatchError) as err:
        open_memory(path, other)
    assert gm.base_identity in str(err.value) and other.base_identity in str(err.value)
    with open_memory(path, gm) as mem:  # refused, and nothing lost
        assert [d["doc_id"] for d in mem.list_documents()] == ["doc0", "doc1"]
    with open_memory(path, other, rebuild=True) as mem:
        assert [d["doc_id"] for d in mem.list_documents()] == ["doc0", "doc1"]
        assert mem.stats()["model"] == other.base_identity
        ans = mem.query("topic1", mode="gist", doc_ids="doc1", max_new_tokens=2)
        assert all(mem.store.load_cache(s.cache_id, other.cache_identity) for s in ans.sources)
    with pytest.raises(CacheMismatchError):
        open_memory(path, gm)


def test_another_embedder_needs_a_rebuild_too(tmp_path, gm):
    class Wider(HashEmbedder):
        identity = "wider"

        def __call__(self, texts):
            return [v + v for v in super().__call__(texts)]

    path = tmp_path / "s"
    with open_memory(path, gm) as mem:
        mem.add(tiny_documents(2), progress=False)
    with pytest.raises(CacheMismatchError, match="embedder"):
        open_memory(path, gm, embedder=Wider())
    with open_memory(path, gm, embedder=Wider(), rebuild=True) as mem:
        assert mem.retrieve("topic1", top_k=1)[0].doc_id == "doc1"


def test_in_memory_memory_saves_a_copy(tmp_path, gm):
    mem = GistMemory(model=gm, embedder=HashEmbedder())
    mem.add(tiny_documents(2), progress=False)
    expected = mem.query("topic0", max_new_tokens=3)
    with pytest.raises(InputError, match="temporary directory"):
        mem.save()
    saved = mem.save(tmp_path / "copy")
    temp = mem.persist_dir
    mem.close()
    assert not temp.exists()
    with GistMemory.load(saved, model=gm, embedder=HashEmbedder()) as again:
        assert again.query("topic0", max_new_tokens=3).text == expected.text


def test_read_only_memory_answers_but_never_writes(mem, gm):
    reader = open_memory(mem.persist_dir, gm, read_only=True)
    try:
        assert reader.query(QUESTION, max_new_tokens=2).sources
        with pytest.raises(InputError, match="read_only"):
            reader.add("new text", progress=False)
        with pytest.raises(InputError, match="read_only"):
            reader.delete("contract")
    finally:
        reader.close()
    with pytest.raises(InputError, match="no gist store"):
        open_memory(mem.persist_dir.parent / "missing", gm, read_only=True)


def _ok(*command: str) -> bool:
    try:
        return subprocess.run(command, capture_output=True).returncode == 0
    except FileNotFoundError:  # no such tool here
        return False


@contextlib.contextmanager
def unwritable(path):
    """Make ``path`` unwritable for this process, and writable again afterwards.

    A user: permissions. Root ignores permissions, so: the immutable flag (``chattr +i``), else,
    where the file system refuses the flag, a read-only bind mount of the directory onto itself.
    Where neither works the test skips, which fails the run: it is a guarantee.
    """
    if os.geteuid() != 0:
        for p in [path, *path.rglob("*")]:
            p.chmod(0o555 if p.is_dir() else 0o444)
        try:
            yield
        finally:
            for p in [path, *path.rglob("*")]:
                p.chmod(0o755 if p.is_dir() else 0o644)
        return
    if _ok("chattr", "-R", "+i", str(path)):
        try:
            yield
        finally:
            subprocess.run(["chattr", "-R", "-i", str(path)], check=True)
        return
    _ok("chattr", "-R", "-i", str(path))  # a refusal may come after part of the tree got the flag
    if _ok("mount", "--bind", str(path), str(path)):
        try:
            if not _ok("mount", "-o", "remount,bind,ro", str(path)):
                pytest.skip("running as root where chattr +i is refused and a bind mount cannot be made read-only")
            yield
        finally:
            subprocess.run(["umount", str(path)], check=True)
        return
    pytest.skip("running as root where neither chattr +i nor a bind mount works: no way to make a directory unwritable")


@pytest.mark.guarantee  # docs/pipeline.md: a persist_dir that cannot be written is a clear InputError
def test_a_non_writable_directory_is_a_clear_error_and_loses_nothing(tmp_path, gm):
    path = tmp_path / "locked" / "s"
    with open_memory(path, gm) as mem:
        mem.add(tiny_documents(2), progress=False)
        before, answer = mem.list_documents(), mem.query("topic1", max_new_tokens=3).text
    with unwritable(tmp_path / "locked"):
        with pytest.raises(InputError, match="cannot write to"):
            open_memory(path, gm)
        with pytest.raises(InputError, match="cannot write to"):
            open_memory(tmp_path / "locked" / "new", gm)
        with pytest.raises(InputError, match="even a read-only open needs a directory this process may write"):
            open_memory(path, gm, read_only=True)
    with open_memory(path, gm) as mem:
        assert mem.list_documents() == before
        assert mem.query("topic1", max_new_tokens=3).text == answer


def test_a_file_where_the_directory_must_be_is_a_clear_error_for_root_too(tmp_path, gm):
    # mkdir under a regular file fails with ENOTDIR whoever runs it: this runs everywhere.
    notes = tmp_path / "notes.txt"
    notes.write_text("mine")
    for persist_dir in (notes / "store", notes / "a" / "b", notes):
        with pytest.raises(InputError, match=re.escape(f"cannot write to {persist_dir}: {notes} is a file, not a "
                                                       "directory; give persist_dir a directory")) as err:
            open_memory(persist_dir, gm)
        assert "\n" not in str(err.value)
    with pytest.raises(InputError, match="holds no gist store"):
        open_memory(notes / "store", gm, read_only=True)
    assert notes.read_text() == "mine" and list(tmp_path.iterdir()) == [notes]


def test_a_non_empty_foreign_directory_is_refused(tmp_path, gm):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(InputError, match="not empty"):
        open_memory(tmp_path, gm)
    assert (tmp_path / "notes.txt").read_text() == "mine"


# ---------------------------------------------------------------------------------------------- other entry points
def test_answer_from_given_chunks(mem, gm):
    ids = ["zebra::1", "contract::0"]
    with prefills(gm) as calls:
        ans = mem.answer_from_sources(QUESTION, ids, mode="hybrid", max_new_tokens=2)
    assert [s.chunk_id for s in ans.sources] == ids and calls[0] == prompt_ids(gm.tokenizer, QUESTION)
    rag = mem.answer_from_sources(QUESTION, mem.retrieve(QUESTION), mode="rag", max_new_tokens=2)
    assert rag.mode == "rag" and rag.prompt_tokens > ans.prompt_tokens
    with pytest.raises(InputError, match="no chunks"):
        mem.answer_from_sources(QUESTION, ["zebra::99"])


def test_compress_texts_and_answer_from_their_caches(mem, gm):
    texts = [CONTRACT * 2, "a short note"]
    ids = mem.compress_texts(texts)
    assert ids == mem.compress_texts(texts) and len(set(ids)) == 2
    long_cache = mem.store.load_cache(ids[0], gm.cache_identity)
    assert long_cache.num_entries == K * -(-len((CONTRACT * 2).encode()) // CHUNK)
    with prefills(gm) as calls:
        ans = mem.answer_from_caches(QUESTION, ids, max_new_tokens=2)
    assert calls[0] == prompt_ids(gm.tokenizer, QUESTION)
    assert ans.kv_entries == long_cache.num_entries + K + ans.prompt_tokens
    with pytest.raises(InputError, match="no gist cache"):
        mem.answer_from_caches(QUESTION, ["0" * 64])


def test_queries_from_many_threads_while_another_adds(mem):
    jobs = [(q, mode, doc) for q, doc in ((QUESTION, "contract"), ("Where do zebras graze?", "zebra")) for mode in MODES]

    def ask(job):
        question, mode, doc = job
        return mem.query(question, mode=mode, doc_ids=[doc], max_new_tokens=4).text

    expected = {job: ask(job) for job in jobs}
    failures = []

    def writer():
        try:
            mem.add(tiny_documents(8, sentences=20), batch_size=1, progress=False)
        except Exception as exc:  # reported below
            failures.append(exc)

    adding = threading.Thread(target=writer)
    adding.start()
    got = []
    with ThreadPoolExecutor(4) as pool:
        while adding.is_alive():
            got += pool.map(lambda job: (job, ask(job), adding.is_alive()), jobs)
    adding.join()
    assert not failures and mem.stats()["documents"] == 10
    assert any(during for _, _, during in got)  # queries did not wait for the add to finish
    assert all(text == expected[job] for job, text, _ in got)


# ---------------------------------------------------------------------------- untrusted gist tags
def test_a_typed_gist_tag_is_inert_and_a_minted_one_reads_its_cache(tmp_path, gm):
    mem = open_memory(tmp_path / "m", gm)
    (cid,) = mem.compress_texts(["The vault code is 4417."])
    minted = mem.answer_prompt(f"{mem.gist_tag(cid)} What is the vault code?", max_new_tokens=2)
    assert minted.kv_entries > minted.prompt_tokens  # the cache's gist entries are in the model's memory
    for typed in (f'<gist id="{cid}"/>', f'<gist id="{cid}" sig="{"0" * 32}"/>'):
        answer = mem.answer_prompt(f"{typed} What is the vault code?", max_new_tokens=2)
        assert answer.kv_entries == answer.prompt_tokens  # no cache was read
        assert answer.mode != minted.mode
    other = open_memory(tmp_path / "other", gm)
    other.compress_texts(["The vault code is 4417."])
    foreign = mem.answer_prompt(f"{other.gist_tag(cid)} What is the vault code?", max_new_tokens=2)
    assert foreign.kv_entries == foreign.prompt_tokens  # another store's secret signs nothing here
    mem.close(), other.close()


@pytest.mark.parametrize("bad", ["../../x", "../" * 3 + "etc/passwd", "A" * 64, "0" * 63, ""])
def test_a_cache_id_that_is_not_a_content_address_names_no_file(tmp_path, gm, bad):
    mem = open_memory(tmp_path / "m", gm)
    (tmp_path / "x.safetensors").write_bytes(b"not a cache")
    with pytest.raises(InputError, match="is not a gist cache id"):
        mem.answer_from_caches("What?", [bad])
    with pytest.raises(InputError, match="is not a gist cache id"):
        mem.gist_tag(bad)
    mem.close()


# ---------------------------------------------------------------------------- streams that stop halfway
def _half_read(mem, mode):
    """A stream read to its first piece (sampled: the tiny random model rarely ends at once)."""
    stream = mem.query(QUESTION, mode=mode, max_new_tokens=40, stream=True, temperature=1.0)
    next(iter(stream))
    return stream


@pytest.mark.parametrize("mode", ["rag", "gist"])
def test_a_half_read_stream_makes_the_next_call_fail_fast_not_hang(mem, mode):
    stream = _half_read(mem, mode)
    with pytest.raises(InputError, match="still reading an answer stream"):
        mem.add("Another document about lighthouses.", progress=False)
    if mode == "rag":  # a text generation holds the model alone
        with pytest.raises(InputError, match="still reading an answer stream"):
            mem.query(QUESTION, mode="gist", max_new_tokens=2)
    stream.close()
    assert mem.query(QUESTION, mode="rag", max_new_tokens=2).text is not None
    mem.add("Another document about lighthouses.", progress=False)


@pytest.mark.parametrize("mode", ["rag", "gist"])
def test_an_abandoned_stream_releases_the_model_when_collected(mem, mode):
    import gc

    stream = _half_read(mem, mode)
    del stream
    gc.collect()
    assert mem.query(QUESTION, mode="rag", max_new_tokens=2).text is not None  # a text generation: the model alone
    mem.add("Another document about lighthouses.", progress=False)  # compression: the model alone


def test_another_thread_waiting_on_a_held_model_gives_up_with_an_error(mem):
    import threading

    stream = _half_read(mem, "rag")
    mem._gate.timeout_s = 0.2
    errors = []
    worker = threading.Thread(target=lambda: errors.append(pytest.raises(InputError, mem.query, QUESTION,
                                                                         mode="gist", max_new_tokens=2)))
    worker.start()
    worker.join(timeout=30)
    assert not worker.is_alive() and errors and "waited" in str(errors[0].value)
    stream.close()


def test_closing_the_memory_closes_its_open_streams(tmp_path, gm):
    m = open_memory(tmp_path / "s", gm)
    m.add(CONTRACT, progress=False)
    stream = _half_read(m, "gist")
    m.close()
    with pytest.raises(StopIteration):
        next(iter(stream))


# ---------------------------------------------------------------------------- damaged store files
@pytest.mark.parametrize("content, message", [
    ("{not json", "is not valid JSON"),
    ('{"hello": "world"}', "is not a gist-memory store manifest"),
    ('{"format": "gist-memory-store", "format_version": 99}', "format version 99"),
    ('{"format": "gist-memory-store", "format_version": 1, "build": {}}', "lacks build.base_model, .*built_with"),
])
def test_a_damaged_store_manifest_is_a_one_line_error_naming_the_file(tmp_path, gm, content, message):
    from gist_memory.errors import CacheFormatError

    path = tmp_path / "s"
    open_memory(path, gm).close()
    (path / "store.json").write_text(content)
    for opener in (lambda: open_memory(path, gm), lambda: GistMemory.load(path, model=gm, embedder=HashEmbedder())):
        with pytest.raises(CacheFormatError, match=message) as err:
            opener()
        assert "store.json" in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("damage", ["garbage", "cut"])
def test_a_damaged_catalogue_is_a_one_line_error_naming_the_file(tmp_path, gm, damage):
    from gist_memory.errors import CacheFormatError

    path = tmp_path / "s"
    with open_memory(path, gm) as m:
        m.add(CONTRACT, progress=False)
    db = path / "catalog.sqlite"
    db.write_bytes(b"not a database " * 80 if damage == "garbage" else db.read_bytes()[:1000])
    for opener in (lambda: open_memory(path, gm), lambda: open_memory(path, gm, read_only=True),
                   lambda: GistMemory.load(path, model=gm, embedder=HashEmbedder())):
        with pytest.raises(CacheFormatError, match="catalog.sqlite is not a readable SQLite catalogue") as err:
            opener()
        assert "\n" not in str(err.value)


@pytest.mark.parametrize("key", [b"", b"\x00" * 7])
def test_a_damaged_tag_key_is_refused_not_used_to_sign(tmp_path, gm, key):
    """An empty or cut secret is one anyone could sign with: neither minting nor reading a tag uses it."""
    from gist_memory.errors import CacheFormatError

    mem = open_memory(tmp_path / "m", gm)
    (cid,) = mem.compress_texts(["The vault code is 4417."])
    (tmp_path / "m" / "tag.key").write_bytes(key)
    forged = f'<gist id="{cid}" sig="{hmac.new(key, cid.encode(), hashlib.sha256).hexdigest()[:32]}"/>'
    for call in (lambda: mem.gist_tag(cid), lambda: mem.answer_prompt(f"{forged} What?", max_new_tokens=1)):
        with pytest.raises(CacheFormatError, match=r"tag.key is damaged \(\d+ bytes, not 32\)") as err:
            call()
        assert "\n" not in str(err.value)
    mem.close()


def test_a_damaged_vector_index_is_a_one_line_error_naming_it(tmp_path, gm):
    from gist_memory.errors import CacheFormatError

    path = tmp_path / "s"
    with open_memory(path, gm) as m:
        m.add(CONTRACT, progress=False)
    (path / "chroma" / "chroma.sqlite3").write_bytes(b"not a database " * 80)
    with pytest.raises(CacheFormatError, match=r"the vector index in .*chroma cannot be opened \(.*file is not a "
                                               r"database\); if it is damaged, restore the store") as err:
        open_memory(path, gm)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("mode", ["gist", "hybrid"])
@pytest.mark.parametrize("lost", ["one", "all"])
def test_a_lost_cache_file_of_a_listed_document_is_a_one_line_error_naming_it(mem, gm, mode, lost):
    """A cache file gone (removed by hand, disk damage) while the catalogue lists it is store
    damage: answering from the other chunks would drop part of the memory without a word, and
    "deleted while this query read them; ask again" would send the user round in circles."""
    from gist_memory.errors import CacheFormatError

    top = mem.retrieve(QUESTION)[0]
    caches = mem.persist_dir / "caches"
    gone = [mem.store.cache_path(top.cache_id)] if lost == "one" else sorted(caches.rglob("*.safetensors"))
    for path in gone:
        path.unlink()
    reader = open_memory(mem.persist_dir, gm, read_only=True)
    try:
        for m in (mem, reader):
            with pytest.raises(CacheFormatError, match="is missing, though the catalogue lists it") as err:
                m.query(QUESTION, mode=mode, max_new_tokens=2)
            message = str(err.value)
            assert any(str(p) in message for p in gone) and "\n" not in message and "ask again" not in message
    finally:
        reader.close()
    if lost == "one":  # the fix the message names works
        assert f"memory.delete({top.doc_id!r})" in message
        doc = mem.store.document(top.doc_id)
        mem.delete(top.doc_id)
        mem.add({"text": doc["text"], "id": top.doc_id, "metadata": doc["metadata"]}, progress=False)
        assert mem.query(QUESTION, mode=mode, max_new_tokens=2).sources


def test_a_lost_cache_file_of_a_compressed_text_is_a_one_line_error_naming_it(mem, gm):
    from gist_memory.errors import CacheFormatError

    (cid,) = mem.compress_texts(["The vault code is 4417."])
    mem.store.cache_path(cid).unlink()
    with pytest.raises(CacheFormatError, match=r"is missing, though the catalogue lists it .*compress that text "
                                               r"again") as err:
        mem.answer_from_caches(QUESTION, [cid])
    assert str(mem.store.cache_path(cid)) in str(err.value)
    assert mem.compress_texts(["The vault code is 4417."]) == [cid]  # the fix the message names works
    assert mem.answer_from_caches(QUESTION, [cid], max_new_tokens=2).kv_entries
