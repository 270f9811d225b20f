"""Smoke tests of examples/: each runs end to end on a tiny model, and its --help is its docstring."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from integration_helpers import tiny_memory

EXAMPLES = Path(__file__).parent.parent / "examples"
sys.path.insert(0, str(EXAMPLES))

NAMES = ["llamaindex_folder_qa", "langchain_lcel_hybrid", "chat_assistant", "document_agent"]


@pytest.mark.parametrize("name", NAMES)
def test_help_is_the_docstring(name):
    out = subprocess.run([sys.executable, str(EXAMPLES / f"{name}.py"), "--help"], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert "--model" in out.stdout and "default" in out.stdout


def test_llamaindex_folder_qa_answers_each_question_from_gist_caches(capsys):
    import llamaindex_folder_qa

    memory = tiny_memory(n_docs=0)
    answers = llamaindex_folder_qa.run(memory, questions=["Where is the key?", "When is the last ferry?"],
                                       max_new_tokens=4)
    assert len(answers) == 2 and all(answers)
    files = {d["metadata"]["file_name"] for d in memory.list_documents()}
    assert files == {p.name for p in EXAMPLES.glob("data/*.txt")}
    assert capsys.readouterr().out.count("from gist caches of") == 2


def test_langchain_lcel_hybrid_answers_from_the_retrieved_caches():
    import langchain_lcel_hybrid

    memory = tiny_memory(n_docs=0)
    question = "Who recommended the restaurant?"
    answers = langchain_lcel_hybrid.run(memory, questions=[question], max_new_tokens=4)
    expected = memory.answer_from_sources(question, memory.retrieve(question, top_k=2), mode="hybrid",
                                          max_new_tokens=4)
    assert answers == [expected.text]


def test_chat_assistant_keeps_the_old_conversation_as_gists(capsys):
    import chat_assistant

    memory = tiny_memory(n_docs=0)
    replies = chat_assistant.run(memory, max_new_tokens=4)
    assert len(replies) == len(chat_assistant.TURNS)
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last.startswith("   [2 gist caches")
    assert len(list(memory.persist_dir.glob("caches/*/*.safetensors"))) == 2  # the gists live in the store


def test_document_agent_runs_end_to_end(capsys):
    import document_agent

    answer = document_agent.run(tiny_memory(n_docs=0), max_new_tokens=8, max_iterations=2)
    assert isinstance(answer, str)
    assert capsys.readouterr().out.startswith("Q: When is the car's next service?")


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
