"""Ask questions about a folder of your text files with LlamaIndex, in gist-memory's hybrid mode.

    python examples/llamaindex_folder_qa.py --folder ~/notes --questions "[Where is the key?]"

The files are read with LlamaIndex's SimpleDirectoryReader and compressed once into gist caches
(kept in --persist_dir, so a second run starts at once). A RetrieverQueryEngine finds the nearest
chunks, GistMemoryPostprocessor swaps their text for their gist caches, and GistMemoryLLM answers
from those few cached entries instead of reading the chunks.
"""

from __future__ import annotations

from pathlib import Path

DATA = str(Path(__file__).parent / "data")
QUESTIONS = ["What is the code for the key box?", "When does the last ferry leave?"]


def run(memory, folder: str = DATA, questions: list[str] = QUESTIONS, top_k: int = 2,
        max_new_tokens: int = 32) -> list[str]:
    """Add the folder's text files to ``memory`` and answer each question; returns the answers."""
    from llama_index.core import PromptTemplate, SimpleDirectoryReader
    from llama_index.core.query_engine import RetrieverQueryEngine
    from llama_index.llms.gist_memory import GistMemoryLLM
    from llama_index.postprocessor.gist_memory import GistMemoryPostprocessor
    from llama_index.retrievers.gist_memory import GistMemoryRetriever

    documents = SimpleDirectoryReader(folder, required_exts=[".txt"]).load_data()
    memory.add(documents, progress=False)
    print(f"{len(documents)} files in memory: {memory.stats()['chunks']} chunks, "
          f"{memory.stats()['compression_ratio']:.0f}x fewer KV entries than their tokens")
    engine = RetrieverQueryEngine.from_args(
        GistMemoryRetriever(memory, similarity_top_k=top_k),
        llm=GistMemoryLLM(memory, max_new_tokens=max_new_tokens),
        node_postprocessors=[GistMemoryPostprocessor(memory)],
        # The context is in the KV cache, so the prompt is just the question, as the adapter was trained.
        text_qa_template=PromptTemplate("{context_str}\n{query_str}"))
    answers = []
    for question in questions:
        response = engine.query(question)
        files = sorted({n.node.metadata["file_name"] for n in response.source_nodes})
        print(f"\nQ: {question}\nA: {str(response).strip()}\n   from gist caches of {', '.join(files)}")
        answers.append(str(response))
    return answers


def main(folder: str = DATA, questions: list[str] = QUESTIONS, model: str = "default",
         persist_dir: str | None = None, top_k: int = 2, max_new_tokens: int = 32) -> None:
    """Answer questions about a folder of .txt files from their gist caches (LlamaIndex).

    Args:
        folder: a folder of .txt files.
        questions: the questions to ask.
        model: 'default' (the embedded model, offline) or a local model directory.
        persist_dir: where the memory is kept; None: a temporary one.
        top_k: chunks whose gist caches answer each question.
        max_new_tokens: longest answer, in tokens.
    """
    from gist_memory import GistMemory

    with GistMemory(persist_dir=persist_dir, model=model) as memory:
        run(memory, folder, questions, top_k, max_new_tokens)


if __name__ == "__main__":
    from jsonargparse import CLI

    CLI(main)
