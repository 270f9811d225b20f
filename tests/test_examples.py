"""examples/ on a tiny model: each answers from the right caches, and its --help is its docstring."""

from __future__ import annotations

import importlib
import inspect
import re
import subprocess
import sys
from pathlib import Path

import pytest

from integration_helpers import ScriptedModel, react_script, tiny_memory

EXAMPLES = Path(__file__).parent.parent / "examples"
sys.path.insert(0, str(EXAMPLES))

NAMES = ["llamaindex_folder_qa", "langchain_lcel_hybrid", "chat_assistant", "document_agent"]
# Questions whose nearest chunk (tiny.py's HashEmbedder: shared words) holds the answer, and where.
FACTS = {"Who recommended the restaurant?": ("trip_notes.txt", "Marco recommended the restaurant"),
         "When is the car's next service?": ("car_and_house.txt", "next service is due in March")}


@pytest.mark.parametrize("name", NAMES)
def test_help_is_the_docstring(name):
    import docstring_parser

    main = importlib.import_module(name).main
    out = subprocess.run([sys.executable, str(EXAMPLES / f"{name}.py"), "--help"], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    text, doc = " ".join(out.stdout.split()), docstring_parser.parse(main.__doc__)
    params = inspect.signature(main).parameters
    assert " ".join(doc.short_description.split()) in text
    assert set(re.findall(r"^\s+--(\w+)", out.stdout, re.M)) - {"config", "print_config"} == set(params)
    assert [p.arg_name for p in doc.params] == list(params)  # every option documented, none invented
    for p in doc.params:
        default = params[p.arg_name].default
        shown = "null" if default is None else default
        assert f"--{p.arg_name}" in text and f"{' '.join(p.description.split())} (type:" in text
        assert f"default: {shown}" in text, p.arg_name


def answer_calls(memory, monkeypatch) -> list:
    """Every (question, history, Answer or AnswerStream) the example's LLM asked the memory for."""
    calls, real = [], memory.answer_prompt

    def answer_prompt(question, history=None, **kwargs):
        out = real(question, history, **kwargs)
        calls.append((question, history or [], out))
        return out

    monkeypatch.setattr(memory, "answer_prompt", answer_prompt)
    return calls


def test_llamaindex_folder_qa_answers_from_the_caches_of_the_files_that_hold_the_answer(capsys, monkeypatch):
    import llamaindex_folder_qa

    from gist_memory.tags import split_gist_refs

    memory = tiny_memory(n_docs=0)
    calls = answer_calls(memory, monkeypatch)
    answers = llamaindex_folder_qa.run(memory, questions=list(FACTS), max_new_tokens=4)
    files = {d["metadata"]["file_name"] for d in memory.list_documents()}
    assert files == {p.name for p in EXAMPLES.glob("data/*.txt")}
    out = capsys.readouterr().out
    for (question, (file, fact)), answer, (prompt, history, read) in zip(FACTS.items(), answers, calls, strict=True):
        sources = memory.retrieve(question, top_k=2)
        assert sources[0].metadata["file_name"] == file and fact in sources[0].text
        # The LLM read those chunks' gist caches and the question alone: none of their text.
        asked, cache_ids = split_gist_refs(prompt, memory.store.verify)
        assert cache_ids == [s.cache_id for s in sources] and asked.strip() == question and not history
        assert read.mode == "gist" and read.kv_entries - read.prompt_tokens == 2 * memory.gm.gist.num_gist_tokens
        expected = memory.answer_from_sources(question, sources, mode="hybrid", max_new_tokens=4)
        assert answer == read.text == expected.text != ""
        assert f"Q: {question}\nA: {answer.strip()}\n   from gist caches of " \
               f"{', '.join(sorted({s.metadata['file_name'] for s in sources}))}\n" in out


def test_langchain_lcel_hybrid_answers_from_the_retrieved_caches_with_only_the_question_prefilled(capsys):
    import langchain_lcel_hybrid

    from gist_memory.generate import prompt_ids

    memory = tiny_memory(n_docs=0)
    question = "Who recommended the restaurant?"
    answers = langchain_lcel_hybrid.run(memory, questions=[question], max_new_tokens=4)
    sources = memory.retrieve(question, top_k=2)
    expected = memory.answer_from_sources(question, sources, mode="hybrid", max_new_tokens=4)
    assert answers == [expected.text] and expected.text
    out = capsys.readouterr().out
    hybrid, rag = [line.split() for line in out.splitlines() if "prefilled" in line]
    question_tokens, gist_entries = len(prompt_ids(memory.gm.tokenizer, question)), 2 * memory.gm.gist.num_gist_tokens
    assert (int(hybrid[2]), int(hybrid[5])) == (question_tokens, gist_entries)  # the question on the two caches
    assert int(rag[2]) > question_tokens + 40 and int(rag[5]) == 0  # the chunks' text instead
    assert sources[0].metadata["file_name"] == FACTS[question][0]
    assert f"sources: {', '.join(sorted({s.metadata['file_name'] for s in sources}))}" in out


def test_chat_assistant_keeps_the_old_conversation_as_gists_and_reads_them(capsys, monkeypatch):
    import chat_assistant

    from gist_memory.tags import render_turns

    memory = tiny_memory(n_docs=0)
    calls = answer_calls(memory, monkeypatch)
    replies = chat_assistant.run(memory, max_new_tokens=4)
    turns, said = chat_assistant.TURNS, [t for pair in zip(chat_assistant.TURNS, replies) for t in pair]
    assert len(replies) == len(turns)
    # max_messages=4, keep_messages=2: turn 3 compresses the first three messages, turn 5 the next four.
    roles = ["user", "assistant"] * len(turns)
    older = [render_turns(list(zip(roles[:3], said[:3]))), render_turns(list(zip(roles[3:7], said[3:7])))]
    cache_ids = memory.compress_texts(older)  # content-addressed: the ids of the caches already made
    assert sorted(p.stem for p in memory.persist_dir.glob("caches/*/*.safetensors")) == sorted(cache_ids)
    question, history, last = calls[-1]
    seen = question + " ".join(text for _, text in history)
    assert question == turns[-1] and all(memory.gist_tag(c) in seen for c in cache_ids)
    for fact in ("Rossi", "4417", "walnuts", "San Giulio"):  # compressed away: only in the gists
        assert fact not in seen
    gist_entries = sum(memory.store.load_cache(c, memory.gm.cache_identity).num_entries for c in cache_ids)
    assert last.kv_entries - last.prompt_tokens == gist_entries
    assert capsys.readouterr().out.strip().splitlines()[-1].startswith(f"   [2 gist caches ({gist_entries} KV entries)")


def test_document_agent_calls_the_tool_and_answers_with_what_it_found(capsys, monkeypatch):
    import document_agent

    memory = tiny_memory(n_docs=0)
    question = "When is the car's next service?"
    script = ScriptedModel(memory, react_script("search_documents", question), monkeypatch)
    calls = answer_calls(memory, monkeypatch)
    answer = document_agent.run(memory, question=question, max_new_tokens=400)
    out = capsys.readouterr().out.splitlines()
    # The tool ran the memory's hybrid query over the folder, and cited the files it read.
    found = memory.query(question, mode="hybrid", max_new_tokens=48)
    files = sorted({s.metadata["file_name"] for s in found.sources})
    observation = f"{found.text.strip()} (from {', '.join(files)})"
    assert FACTS[question][0] in files
    assert out[:3] == [f"Q: {question}", f"   tool call: search_documents({{'query': {question!r}}})",
                       f"   tool result: {observation}"]
    # The model read what the tool returned and answered with it; its own observation was cut.
    assert len(script.prompts) == 2 and script.prompts[1].endswith(f"Observation: {observation}<|end|><|assistant|>")
    action = getattr(calls[0][2], "answer", calls[0][2]).text
    assert action.endswith(f"Action Input: {{'query': '{question}'}}\n") and "invented" not in action
    assert answer == observation and out[-1] == f"A: {observation}"


@pytest.fixture(scope="module")
def default_memory():
    from gist_memory import GistMemory

    with GistMemory() as memory:  # the embedded default model and embedder
        yield memory


@pytest.mark.slow
def test_examples_run_on_the_default_model(default_memory, capsys):
    import langchain_lcel_hybrid
    import llamaindex_folder_qa

    question = "Who recommended the restaurant?"
    answers = llamaindex_folder_qa.run(default_memory, questions=[question], top_k=1, max_new_tokens=8)
    assert answers[0].strip()
    answers = langchain_lcel_hybrid.run(default_memory, questions=[question], top_k=1, max_new_tokens=8)
    assert answers[0].strip()
    hybrid, rag = [line for line in capsys.readouterr().out.splitlines() if "prefilled" in line]
    assert int(hybrid.split()[2]) < int(rag.split()[2])  # the question alone, against the chunk's text too
