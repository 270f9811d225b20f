"""Gist tags bound to a scope (issue 13): a tag minted for one tenant's retrieval is plain text to a
reader of any other scope, so a cache outside a tenant's filters cannot be read by replaying a tag
seen elsewhere; the LangChain and LlamaIndex pieces carry the scope from retrieval to the model."""

from __future__ import annotations

import pytest

from gist_memory import InputError
from integration_helpers import shared_memory

QUESTION = "What does topic1 hold near the river?"


@pytest.fixture(scope="module")
def memory():
    return shared_memory()


def reads_cache(answer) -> bool:
    return answer.kv_entries > answer.prompt_tokens  # gist entries sit before the prompt


def test_a_scoped_tag_is_read_in_its_scope_only(memory):
    (cid,) = memory.compress_texts(["Tenant A's vault code is 4417."])
    tag_a = memory.gist_tag(cid, scope="tenant-a")
    assert reads_cache(memory.answer_prompt(f"{tag_a} What is the code?", max_new_tokens=1, scope="tenant-a"))
    for reader in ("tenant-b", None):
        answer = memory.answer_prompt(f"{tag_a} What is the code?", max_new_tokens=1, scope=reader)
        assert not reads_cache(answer) and answer.mode == "none"
    # and an unscoped tag is not read by a scoped reader: tenants see only what was minted for them
    plain = memory.gist_tag(cid)
    assert reads_cache(memory.answer_prompt(f"{plain} What?", max_new_tokens=1))
    assert not reads_cache(memory.answer_prompt(f"{plain} What?", max_new_tokens=1, scope="tenant-a"))
    # history is checked the same way
    history = [("user", f"Earlier: {tag_a}")]
    assert reads_cache(memory.answer_prompt("What?", history, max_new_tokens=1, scope="tenant-a"))
    assert not reads_cache(memory.answer_prompt("What?", history, max_new_tokens=1, scope="tenant-b"))


@pytest.mark.parametrize("bad", ["", 7, b"tenant"])
def test_a_scope_is_a_non_empty_str(memory, bad):
    (cid,) = memory.compress_texts(["Tenant A's vault code is 4417."])
    with pytest.raises(InputError, match="scope must be None or a non-empty str"):
        memory.gist_tag(cid, scope=bad)
    with pytest.raises(InputError, match="scope must be None or a non-empty str"):
        memory.answer_prompt("What?", scope=bad)


def test_langchain_carries_the_scope_from_retriever_to_chat_model(memory):
    from langchain_gist_memory import ChatGistMemory, GistMemoryCompressor, GistMemoryRetriever, format_gist_refs

    docs = GistMemoryRetriever(memory=memory, k=2, where={"group": "odd"}, scope="tenant-a").invoke(QUESTION)
    context = format_gist_refs(docs)
    compressed = format_gist_refs(GistMemoryCompressor(memory=memory, scope="tenant-a")
                                  .compress_documents(docs, QUESTION))
    for ctx in (context, compressed):
        same = ChatGistMemory(memory=memory, mode=None, max_tokens=1, scope="tenant-a").invoke(f"{ctx}\n{QUESTION}")
        other = ChatGistMemory(memory=memory, mode=None, max_tokens=1, scope="tenant-b").invoke(f"{ctx}\n{QUESTION}")
        unscoped = ChatGistMemory(memory=memory, mode=None, max_tokens=1).invoke(f"{ctx}\n{QUESTION}")
        assert same.response_metadata["mode"] == "gist"
        assert other.response_metadata["mode"] == "none" and unscoped.response_metadata["mode"] == "none"


def test_llamaindex_carries_the_scope_from_postprocessor_to_llm(memory):
    from llama_index.llms.gist_memory import GistMemoryLLM
    from llama_index.postprocessor.gist_memory import GistMemoryPostprocessor
    from llama_index.retrievers.gist_memory import GistMemoryRetriever

    def read(llm_scope) -> int:
        llm = GistMemoryLLM(memory, max_new_tokens=1, scope=llm_scope)
        nodes = GistMemoryPostprocessor(memory, scope="tenant-a").postprocess_nodes(
            GistMemoryRetriever(memory, similarity_top_k=2).retrieve(QUESTION))
        prompt = "\n".join(n.node.get_content() for n in nodes) + "\n" + QUESTION
        return llm.complete(prompt).raw["mode"]

    assert read("tenant-a") == "gist"
    assert read("tenant-b") == "none" and read(None) == "none"
