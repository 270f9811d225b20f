"""A LangChain LCEL chain in gist-memory's hybrid mode: retrieve chunks, read their gist caches.

    python examples/langchain_lcel_hybrid.py --questions "[Who recommended the restaurant?]"

    retriever ──▶ format_gist_refs ──▶ prompt ──▶ ChatGistMemory ──▶ StrOutputParser
    (top-k chunks)  (their cache tags)            (reads the caches, not the text)

The same chain with the chunks' text in the prompt (``format_docs``) is the RAG baseline; the
example prints what each one prefilled and how soon the first token came.
"""

from __future__ import annotations

from pathlib import Path

DATA = str(Path(__file__).parent / "data")
QUESTIONS = ["Who recommended the restaurant?", "What is the tyre pressure at the front?"]


def format_docs(docs) -> str:
    """The usual RAG formatting: the chunks' text, one after another."""
    return "\n\n".join(d.page_content for d in docs)


def run(memory, folder: str = DATA, questions: list[str] = QUESTIONS, top_k: int = 2,
        max_new_tokens: int = 32) -> list[str]:
    """Add the folder's .txt files to ``memory``, answer each question both ways; returns the hybrid answers."""
    from langchain_core.output_parsers import StrOutputParser
    from langchain_core.prompts import ChatPromptTemplate
    from langchain_core.runnables import RunnablePassthrough

    from langchain_gist_memory import ChatGistMemory, GistMemoryRetriever, format_gist_refs

    files = sorted(Path(folder).glob("*.txt"))
    memory.add([{"text": f.read_text(), "metadata": {"file_name": f.name}} for f in files], progress=False)
    retriever = GistMemoryRetriever(memory=memory, k=top_k)
    prompt = ChatPromptTemplate.from_messages([("human", "{context}\n\n{question}")])

    def chain(format_context, mode):
        llm = ChatGistMemory(memory=memory, mode=mode, max_tokens=max_new_tokens)
        return {"context": retriever | format_context, "question": RunnablePassthrough()} | prompt | llm

    # rag: the chunks' text is already in the prompt, so the model answers from the prompt alone (mode=None).
    hybrid, rag = chain(format_gist_refs, "hybrid"), chain(format_docs, None)
    answers = []
    for question in questions:
        print(f"\nQ: {question}\nA: ", end="")
        for piece in (hybrid | StrOutputParser()).stream(question):
            print(piece, end="", flush=True)
        print()
        for name, c in (("hybrid", hybrid), ("rag", rag)):
            msg = c.invoke(question)
            cached = msg.usage_metadata["input_token_details"]["cache_read"]
            prefilled = msg.usage_metadata["input_tokens"] - cached
            ttft_ms = msg.response_metadata["timings"]["ttft_s"] * 1000
            print(f"   {name:6s} prefilled {prefilled:4d} tokens on {cached:3d} cached gist entries, "
                  f"first token after {ttft_ms:4.0f} ms: {msg.content.strip()[:60]!r}")
            if name == "hybrid":
                answers.append(msg.content)
        sources = sorted({d.metadata["file_name"] for d in retriever.invoke(question)})
        print(f"   sources: {', '.join(sources)}")
    return answers


def main(folder: str = DATA, questions: list[str] = QUESTIONS, model: str = "default",
         persist_dir: str | None = None, top_k: int = 2, max_new_tokens: int = 32) -> None:
    """Answer questions about a folder of .txt files with an LCEL chain in hybrid mode (LangChain).

    Args:
        folder: a folder of .txt files.
        questions: the questions to ask.
        model: 'default' (the embedded model, offline) or a local model directory.
        persist_dir: where the memory is kept; None: a temporary one.
        top_k: chunks retrieved per question.
        max_new_tokens: longest answer, in tokens.
    """
    from gist_memory import GistMemory

    with GistMemory(persist_dir=persist_dir, model=model) as memory:
        run(memory, folder, questions, top_k, max_new_tokens)


if __name__ == "__main__":
    from jsonargparse import CLI

    CLI(main)
