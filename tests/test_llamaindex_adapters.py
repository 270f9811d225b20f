"""LlamaIndex adapters: the LLM in LlamaIndex's engines, the retriever, the postprocessor and the memory block."""

from __future__ import annotations

import pytest
from llama_index.core.llms import ChatMessage

from integration_helpers import ScriptedModel, react_script, shared_memory, tiny_memory
from llama_index.llms.gist_memory import GistMemoryLLM
from llama_index.memory.gist_memory import GistMemoryBlock
from llama_index.postprocessor.gist_memory import GistMemoryPostprocessor
from llama_index.retrievers.gist_memory import GistMemoryRetriever

QUESTION = "What does topic1 hold near the river?"


class Spy:
    """Records every Answer the memory gives the LLM (what it read, what it cost)."""

    def __init__(self, memory, monkeypatch):
        self.answers = []
        real = memory.answer_prompt

        def answer_prompt(*args, **kwargs):
            out = real(*args, **kwargs)
            self.answers.append((args, out))
            return out

        monkeypatch.setattr(memory, "answer_prompt", answer_prompt)

    def last(self):
        """(prompt, Answer) of the latest call; a streamed Answer once its stream is read."""
        (prompt, *_), out = self.answers[-1]
        return prompt, getattr(out, "answer", out)


@pytest.fixture(scope="module")
def memory():
    return shared_memory()


@pytest.fixture
def spy(memory, monkeypatch):
    return Spy(memory, monkeypatch)


def test_llm_completes_and_chats_like_the_model(memory):
    llm = GistMemoryLLM(memory, max_new_tokens=6)
    assert llm.complete("Say hi.").text == memory.gm.generate("Say hi.", None, max_new_tokens=6).text
    out = llm.chat([ChatMessage(role="system", content="Be brief."), ChatMessage(role="user", content="Say hi.")])
    expected = memory.gm.generate("Say hi.", None, max_new_tokens=6, context="System: Be brief.")
    assert out.message.content == expected.text
    streamed = list(llm.stream_complete("Say hi."))
    assert "".join(r.delta for r in streamed) == streamed[-1].text == llm.complete("Say hi.").text
    assert streamed[-1].raw["output_tokens"] == 6
    assert "".join(r.delta for r in llm.stream_chat([ChatMessage(role="user", content="Say hi.")])) \
        == llm.complete("Say hi.").text
    meta = llm.metadata
    assert meta.is_chat_model and not meta.is_function_calling_model and meta.num_output == 6
    assert meta.context_window == memory.gm.model.config.max_position_embeddings


def test_llm_with_a_mode_answers_from_the_store(memory):
    out = GistMemoryLLM(memory, mode="hybrid", top_k=2, max_new_tokens=6).complete(QUESTION)
    expected = memory.query(QUESTION, mode="hybrid", top_k=2, max_new_tokens=6)
    assert out.text == expected.text and out.raw["sources"] == [s.chunk_id for s in expected.sources]


def test_retriever_returns_the_memorys_chunks_with_their_caches(memory):
    nodes = GistMemoryRetriever(memory, similarity_top_k=3).retrieve(QUESTION)
    sources = memory.retrieve(QUESTION, top_k=3)
    assert [n.node.node_id for n in nodes] == [s.chunk_id for s in sources]
    assert [n.node.get_content() for n in nodes] == [s.text for s in sources]
    assert [n.score for n in nodes] == pytest.approx([s.score for s in sources])
    assert [n.node.metadata["cache_id"] for n in nodes] == [s.cache_id for s in sources]
    assert "cache_id" not in nodes[0].node.get_content(metadata_mode="llm")


def test_query_engine_runs_hybrid_with_the_postprocessor(memory, spy):
    from llama_index.core.query_engine import RetrieverQueryEngine

    llm = GistMemoryLLM(memory, max_new_tokens=6)
    retriever = GistMemoryRetriever(memory, similarity_top_k=2)
    hybrid = RetrieverQueryEngine.from_args(retriever, llm=llm, node_postprocessors=[GistMemoryPostprocessor(memory)])
    response = hybrid.query(QUESTION)
    prompt, answer = spy.last()
    sources = memory.retrieve(QUESTION, top_k=2)
    assert all(s.text not in prompt for s in sources)  # the chunks' text never reached the prompt
    assert answer.kv_entries - answer.prompt_tokens == 2 * memory.gm.gist.num_gist_tokens
    assert [n.node.metadata["cache_id"] for n in response.source_nodes] == [s.cache_id for s in sources]
    assert str(response) == answer.text
    RetrieverQueryEngine.from_args(retriever, llm=llm).query(QUESTION)  # without it: the text
    prompt, answer = spy.last()
    assert all(s.text.strip() in prompt for s in sources) and answer.kv_entries == answer.prompt_tokens


def test_vector_store_index_query_engine_runs_hybrid(memory, spy):
    from llama_index.core import Document, VectorStoreIndex
    from llama_index.core.embeddings import MockEmbedding

    texts = ["The lighthouse keeper's cat is called Miso.", "The ferry leaves at seven."]
    index = VectorStoreIndex.from_documents([Document(text=t) for t in texts], embed_model=MockEmbedding(embed_dim=8))
    engine = index.as_query_engine(llm=GistMemoryLLM(memory, max_new_tokens=4), similarity_top_k=2,
                                   node_postprocessors=[GistMemoryPostprocessor(memory)])
    response = engine.query("What is the cat called?")
    prompt, answer = spy.last()
    ids = memory.compress_texts(texts)  # content-addressed: the caches the postprocessor made
    assert sorted(n.node.metadata["cache_id"] for n in response.source_nodes) == sorted(ids)
    assert all(t not in prompt for t in texts) and answer.mode == "gist"
    stored = [n.get_content() for n in index.docstore.docs.values()]
    assert sorted(stored) == sorted(texts)  # the index's own nodes are untouched


@pytest.mark.parametrize("engine_name", ["ContextChatEngine", "CondensePlusContextChatEngine"])
def test_chat_engines_read_the_retrieved_caches(memory, spy, engine_name):
    from llama_index.core import chat_engine

    # Sampled: without gist caches the tiny random base model greedily emits only special tokens,
    # and CondensePlusContext's condensed question must not come back empty.
    engine = getattr(chat_engine, engine_name).from_defaults(
        GistMemoryRetriever(memory, similarity_top_k=2), llm=GistMemoryLLM(memory, max_new_tokens=4, temperature=1.0),
        node_postprocessors=[GistMemoryPostprocessor(memory)])
    first = engine.chat(QUESTION)
    second = engine.stream_chat("And topic2?")
    streamed = "".join(second.response_gen)
    _, answer = spy.last()
    assert streamed == answer.text
    assert answer.mode == "gist" and answer.kv_entries - answer.prompt_tokens == 2 * memory.gm.gist.num_gist_tokens
    assert str(first) and len(engine.chat_history) == 4


def test_memory_block_holds_flushed_turns_as_gists_and_the_llm_reads_them(spy):
    import asyncio

    from llama_index.core.memory import Memory

    memory = tiny_memory(n_docs=0)
    block = GistMemoryBlock(memory=memory)
    chat = Memory.from_defaults(token_limit=60, chat_history_token_ratio=0.5, token_flush_size=20,
                                memory_blocks=[block])
    turns = ["I parked on level 3 of the north garage.", "Noted.", "My sister is called Alma.", "Nice name.",
             "The vault code is 4417.", "Got it."]
    for i, text in enumerate(turns):
        chat.put(ChatMessage(role="user" if i % 2 == 0 else "assistant", content=text))
    assert block.cache_ids and all(memory.store.has_cache(c) for c in block.cache_ids)
    messages = chat.get(input="Where did I park?")
    system = messages[0].content
    assert all(memory.gist_tag(c) in system for c in block.cache_ids)
    assert "north garage" not in "".join(m.content for m in messages)  # flushed text left the prompt
    question = ChatMessage(role="user", content="Where did I park?")
    out = GistMemoryLLM(memory, max_new_tokens=4).chat([*messages, question])
    gist_entries = sum(memory.store.load_cache(c, memory.gm.cache_identity).num_entries for c in block.cache_ids)
    assert out.raw["kv_entries"] - out.raw["prompt_tokens"] == gist_entries
    recall = GistMemoryBlock(memory=memory, cache_ids=block.cache_ids, as_text=True)
    said = asyncio.run(recall.aget([ChatMessage(role="user", content="Where did I park?")]))
    assert said == memory.answer_from_caches("Where did I park?", block.cache_ids).text


async def test_function_agent_needs_function_calling_and_react_agent_calls_the_tool(memory, monkeypatch):
    from llama_index.core.agent.workflow import FunctionAgent, ReActAgent
    from llama_index.core.tools import FunctionTool

    asked = []

    def lookup(query: str) -> str:
        """Answer a question from my documents."""
        asked.append(query)
        return f"{query} Found in {memory.query(query, max_new_tokens=4).sources[0].doc_id}"

    llm, tool = GistMemoryLLM(memory, max_new_tokens=200), FunctionTool.from_defaults(lookup)
    with pytest.raises(Exception, match="FunctionCallingLLM"):
        await FunctionAgent(tools=[tool], llm=llm).run(user_msg="Where is topic1?")
    # ReAct needs no function calling: the LLM writes "Action: lookup" as text and the agent parses it.
    script = ScriptedModel(memory, react_script("lookup", "Where is topic1?"), monkeypatch)
    result = await ReActAgent(tools=[tool], llm=llm).run(user_msg="Where is topic1?")
    observation = "Where is topic1? Found in doc1"
    assert asked == ["Where is topic1?"]  # the tool ran, with the query the LLM wrote
    assert len(script.prompts) == 2 and script.prompts[1].endswith(f"Observation: {observation}<|end|><|assistant|>")
    assert str(result.response.content) == observation  # what the tool found reached the answer


# ---------------------------------------------------------------- bad input: LlamaIndex's usual errors
def test_bad_input_gives_clear_value_errors(memory, tmp_path):
    from pydantic import ValidationError

    with pytest.raises(ValueError, match="question is empty"):
        GistMemoryRetriever(memory).retrieve("")
    with pytest.raises(ValueError, match="question is empty"):
        GistMemoryLLM(memory).complete("  ")
    with pytest.raises(ValidationError, match="'rag', 'gist', 'hybrid' or 'full'"):
        GistMemoryLLM(memory, mode="fast")
    with pytest.raises(ValueError, match="valid modes are rag, gist, hybrid, full"):
        GistMemoryLLM(memory).complete(QUESTION, mode="fast")
    for build in (GistMemoryLLM, GistMemoryRetriever, GistMemoryPostprocessor, GistMemoryBlock):
        with pytest.raises(ValueError, match="holds no gist store"):
            build(tmp_path / "nowhere")
    with pytest.raises(ValueError, match="similarity_top_k must be a positive integer"):
        GistMemoryRetriever(memory, similarity_top_k=0)
    with pytest.raises(ValueError, match="have none"):
        GistMemoryLLM(memory).chat([ChatMessage(role="system", content="Be brief.")])
    from llama_index.core.base.llms.types import ImageBlock, TextBlock

    image = ChatMessage(role="user", blocks=[TextBlock(text="What is this?"),
                                             ImageBlock(url="https://example.com/a.png")])
    with pytest.raises(ValueError, match="reads text only"):
        GistMemoryLLM(memory).chat([image])
