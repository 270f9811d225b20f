"""LangChain adapters: each one does what the pipeline does, through LangChain's own interfaces."""

from __future__ import annotations

import pytest
from langchain_core.documents import Document
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import RunnablePassthrough
from pydantic import ValidationError

import langchain_gist_memory
from integration_helpers import shared_memory, tiny_memory
from langchain_gist_memory import (
    ChatGistMemory,
    GistMemoryCompressor,
    GistMemoryMiddleware,
    GistMemoryRetriever,
    format_gist_refs,
)

QUESTION = "What does topic1 hold near the river?"


@pytest.fixture(scope="module")
def memory():
    return shared_memory()


def test_all_is_the_public_api():
    assert langchain_gist_memory.__all__ == ["ChatGistMemory", "GistMemoryCompressor", "GistMemoryMiddleware",
                                             "GistMemoryRetriever", "format_gist_refs"]
    assert all(hasattr(langchain_gist_memory, name) for name in langchain_gist_memory.__all__)


def test_chat_model_answers_as_the_pipeline_does(memory):
    for mode in ("hybrid", "rag", "gist", "full"):
        msg = ChatGistMemory(memory=memory, mode=mode, top_k=2, max_tokens=6).invoke(QUESTION)
        expected = memory.query(QUESTION, mode=mode, top_k=2, max_new_tokens=6)
        assert msg.content == expected.text
        assert msg.response_metadata["mode"] == mode
        assert msg.response_metadata["sources"] == [s.chunk_id for s in expected.sources]
        assert msg.usage_metadata["output_tokens"] == 6
        assert msg.usage_metadata["input_tokens"] == expected.kv_entries


def test_hybrid_reads_gist_entries_where_rag_reads_text(memory):
    llm = ChatGistMemory(memory=memory, top_k=3, max_tokens=2)
    hybrid, rag = llm.invoke(QUESTION), llm.invoke(QUESTION, mode="rag")  # mode per call
    k = memory.gm.gist.num_gist_tokens
    assert hybrid.usage_metadata["input_token_details"]["cache_read"] == 3 * k
    assert rag.usage_metadata["input_token_details"]["cache_read"] == 0
    assert rag.usage_metadata["input_tokens"] > hybrid.usage_metadata["input_tokens"]


def test_earlier_turns_go_before_the_question_as_text(memory):
    llm = ChatGistMemory(memory=memory, mode=None, max_tokens=6)
    msgs = [SystemMessage("Be brief."), HumanMessage("I parked on level 3."), AIMessage("Noted."),
            HumanMessage("Where did I park?")]
    expected = memory.gm.generate("Where did I park?", None, max_new_tokens=6,
                                  context="System: Be brief.\nUser: I parked on level 3.\nAssistant: Noted.")
    out = llm.invoke(msgs)
    assert out.content == expected.text and out.usage_metadata["input_tokens"] == expected.prompt_tokens


def test_stop_strings_end_the_answer(memory):
    llm = ChatGistMemory(memory=memory, max_tokens=30, temperature=1.0)
    text = llm.invoke(QUESTION).content
    stop = next(text[i:i + 2] for i in range(3, len(text) - 2) if "\ufffd" not in text[i:i + 2])
    assert llm.invoke(QUESTION, stop=[stop]).content == text[:text.index(stop)]
    assert ChatGistMemory(memory=memory, max_tokens=30, temperature=1.0, stop=[stop]).invoke(QUESTION).content \
        == text[:text.index(stop)]
    assert "".join(c.content for c in llm.stream(QUESTION, stop=[stop])) == text[:text.index(stop)]


def test_stream_joins_to_the_invoked_answer_and_ends_with_usage(memory):
    llm = ChatGistMemory(memory=memory, max_tokens=12)
    chunks = list(llm.stream(QUESTION))
    full = chunks[0]
    for c in chunks[1:]:
        full += c
    assert full.content == llm.invoke(QUESTION).content
    assert chunks[-1].chunk_position == "last" and chunks[-1].usage_metadata["output_tokens"] == 12
    assert sum(1 for c in chunks if c.usage_metadata) == 1


def test_retriever_honours_k_and_carries_gist_caches(memory):
    retriever = GistMemoryRetriever(memory=memory, k=3)
    docs = retriever.invoke(QUESTION)
    sources = memory.retrieve(QUESTION, top_k=3)
    assert [d.id for d in docs] == [s.chunk_id for s in sources]
    assert [d.page_content for d in docs] == [s.text for s in sources]
    assert [d.metadata["cache_id"] for d in docs] == [s.cache_id for s in sources]
    assert len(retriever.invoke(QUESTION, k=1)) == 1
    odd = GistMemoryRetriever(memory=memory, k=4, where={"group": "odd"}).invoke(QUESTION)
    assert odd and {d.metadata["group"] for d in odd} == {"odd"}


def test_lcel_chain_runs_hybrid_from_the_retrieved_caches(memory):
    retriever = GistMemoryRetriever(memory=memory, k=2)
    prompt = ChatPromptTemplate.from_messages([("human", "{context}\n{question}")])
    chain = ({"context": retriever | format_gist_refs, "question": RunnablePassthrough()}
             | prompt | ChatGistMemory(memory=memory, max_tokens=6))
    msg = chain.invoke(QUESTION)
    expected = memory.answer_from_sources(QUESTION, memory.retrieve(QUESTION, top_k=2), mode="hybrid",
                                          max_new_tokens=6)
    assert msg.content == expected.text
    assert msg.usage_metadata["input_tokens"] == expected.kv_entries  # gist entries + the question, no chunk text
    assert (chain | StrOutputParser()).invoke(QUESTION) == expected.text


def test_compressor_turns_any_retrievers_documents_into_gist_caches(memory):
    from langchain_classic.retrievers import ContextualCompressionRetriever
    from langchain_core.embeddings import DeterministicFakeEmbedding
    from langchain_core.vectorstores import InMemoryVectorStore

    texts = ["The lighthouse keeper's cat is called Miso.", "The ferry leaves at seven.", "Bring a raincoat."]
    store = InMemoryVectorStore.from_texts(texts, DeterministicFakeEmbedding(size=16),
                                           metadatas=[{"n": i} for i in range(3)])
    retriever = ContextualCompressionRetriever(base_compressor=GistMemoryCompressor(memory=memory),
                                               base_retriever=store.as_retriever(search_kwargs={"k": 3}))
    docs = retriever.invoke("cat")
    assert len(docs) == 3 and {d.metadata["n"] for d in docs} == {0, 1, 2}
    ids = memory.compress_texts([texts[d.metadata["n"]] for d in docs])  # content-addressed: the same caches
    assert [d.metadata["cache_id"] for d in docs] == ids
    assert [d.page_content for d in docs] == [memory.gist_tag(i) for i in ids]
    context = "\n".join(d.page_content for d in docs)
    msg = ChatGistMemory(memory=memory, max_tokens=4).invoke(f"{context}\nWhat is the cat called?")
    assert msg.content == memory.answer_from_caches("What is the cat called?", ids, max_new_tokens=4).text


def test_compressor_reuses_the_caches_of_retrieved_chunks(memory):
    docs = GistMemoryRetriever(memory=memory, k=3).invoke(QUESTION)
    caches = memory.stats()["caches"]
    out = GistMemoryCompressor(memory=memory).compress_documents(docs, QUESTION)
    assert [d.metadata["cache_id"] for d in out] == [d.metadata["cache_id"] for d in docs]
    assert memory.stats()["caches"] == caches


def test_middleware_keeps_a_long_conversation_as_gist_memory():
    from langchain.agents import create_agent
    from langgraph.checkpoint.memory import InMemorySaver

    memory = tiny_memory(n_docs=0)
    llm = ChatGistMemory(memory=memory, mode=None, max_tokens=4)
    agent = create_agent(llm, tools=[], middleware=[GistMemoryMiddleware(memory, max_messages=4, keep_messages=2)],
                         checkpointer=InMemorySaver())
    config = {"configurable": {"thread_id": "t"}}
    for turn in ["I parked on level 3.", "My sister is Alma.", "The code is 4417.", "Where did I park?"]:
        state = agent.invoke({"messages": [("user", turn)]}, config)
    messages = state["messages"]
    gists = messages[0]
    assert gists.additional_kwargs["lc_source"] == "gist_memory"
    assert len(messages) <= 1 + 4 + 1
    assert all(memory.store.has_cache(c) for c in gists.additional_kwargs["gist_cache_ids"])
    last = messages[-1]
    assert last.response_metadata["mode"] == "gist"  # the model read the conversation's caches
    assert last.usage_metadata["input_token_details"]["cache_read"] > 0


def test_middleware_compresses_the_old_part_and_never_splits_a_tool_result(memory):
    mw = GistMemoryMiddleware(memory, max_messages=3, keep_messages=2)
    msgs = [HumanMessage("a", id="1"), AIMessage("b", id="2", tool_calls=[{"name": "t", "args": {}, "id": "c1"}]),
            ToolMessage("r", tool_call_id="c1", id="3"), HumanMessage("d", id="4")]
    update = mw.before_model({"messages": msgs}, None)
    gists, *kept = update["messages"][1:]
    assert [m.id for m in kept] == ["4"]  # the cut moved past the tool result
    assert gists.additional_kwargs["gist_cache_ids"] == memory.compress_texts(["User: a\nAssistant: b\nTool: r"])
    assert mw.before_model({"messages": [gists, *kept]}, None) is None  # short again: nothing to do


# ---------------------------------------------------------------- bad input: LangChain's usual errors
def test_empty_question_is_a_value_error(memory):
    with pytest.raises(ValueError, match="question is empty"):
        ChatGistMemory(memory=memory).invoke("   ")
    with pytest.raises(ValueError, match="question is empty"):
        GistMemoryRetriever(memory=memory).invoke("")


def test_unknown_mode_names_the_valid_ones(memory):
    with pytest.raises(ValidationError, match="'rag', 'gist', 'hybrid' or 'full'"):
        ChatGistMemory(memory=memory, mode="fast")
    with pytest.raises(ValueError, match="valid modes are rag, gist, hybrid, full"):
        ChatGistMemory(memory=memory).invoke(QUESTION, mode="fast")


def test_missing_store_is_a_validation_error(tmp_path):
    with pytest.raises(ValidationError, match="holds no gist store"):
        ChatGistMemory(memory=tmp_path / "nowhere")
    with pytest.raises(ValidationError, match="holds no gist store"):
        GistMemoryRetriever(memory=str(tmp_path))
    with pytest.raises(ValidationError, match="memory\n  Field required"):
        GistMemoryCompressor()
    with pytest.raises(ValueError, match="holds no gist store"):
        GistMemoryMiddleware(tmp_path)


def test_messages_it_cannot_answer_say_why(memory):
    llm = ChatGistMemory(memory=memory)
    with pytest.raises(ValueError, match="have none"):
        llm.invoke([SystemMessage("You are helpful.")])
    image = {"type": "image", "url": "https://example.com/cat.png"}
    with pytest.raises(ValueError, match="reads text only"):
        llm.invoke([HumanMessage(content=[{"type": "text", "text": "What is this?"}, image])])
    with pytest.raises(NotImplementedError):
        llm.bind_tools([])
    with pytest.raises(ValueError, match="no 'gist_tag'"):
        format_gist_refs([Document("text without a gist cache")])
    with pytest.raises(ValueError, match="max_messages must be"):
        GistMemoryMiddleware(memory, max_messages=2, keep_messages=2)
