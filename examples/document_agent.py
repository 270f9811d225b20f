"""An agent that answers from your document folder, with GistMemory as its tool (LlamaIndex ReActAgent).

    python examples/document_agent.py --question "When is the car's next service?"

ReActAgent asks the LLM for text ("Thought: ... Action: search_documents ...") and parses it, so
it needs no function calling, which the default 135M model does not have (FunctionAgent and
LangChain's create_agent with tools need a function-calling model). The tool runs
``GistMemory.query`` in hybrid mode over the folder. A model this small often skips the tool or
breaks the format; the agent then answers from its own text, and the run says so.
"""

from __future__ import annotations

from pathlib import Path

DATA = str(Path(__file__).parent / "data")


def run(memory, folder: str = DATA, question: str = "When is the car's next service?",
        max_new_tokens: int = 96, max_iterations: int = 4) -> str:
    """Add the folder's .txt files to ``memory``, ask the agent ``question``; returns its answer."""
    import asyncio

    from llama_index.core import SimpleDirectoryReader
    from llama_index.core.agent.workflow import ReActAgent, ToolCall, ToolCallResult
    from llama_index.core.tools import FunctionTool
    from llama_index.llms.gist_memory import GistMemoryLLM

    memory.add(SimpleDirectoryReader(folder, required_exts=[".txt"]).load_data(), progress=False)

    def search_documents(query: str) -> str:
        """Search my personal documents (notes, letters, plans) and answer a question from them."""
        answer = memory.query(query, mode="hybrid", max_new_tokens=48)
        files = sorted({s.metadata.get("file_name", s.doc_id) for s in answer.sources})
        return f"{answer.text.strip()} (from {', '.join(files)})"

    llm = GistMemoryLLM(memory, max_new_tokens=max_new_tokens, stop=["Observation:"])
    agent = ReActAgent(tools=[FunctionTool.from_defaults(search_documents)], llm=llm)

    async def ask() -> str:
        # A small model may break the format at every step; then it answers once more, told to stop.
        handler = agent.run(user_msg=question, max_iterations=max_iterations, early_stopping_method="generate")
        calls = 0
        async for event in handler.stream_events():
            if isinstance(event, ToolCall) and not isinstance(event, ToolCallResult):
                calls += 1
                print(f"   tool call: {event.tool_name}({event.tool_kwargs})")
            elif isinstance(event, ToolCallResult):
                print(f"   tool result: {event.tool_output.content}")
        result = await handler
        if not calls:
            print("   (the model answered without calling the tool)")
        return str(result.response.content)

    print(f"Q: {question}")
    answer = asyncio.run(ask())
    print(f"A: {answer.strip()}")
    return answer


def main(folder: str = DATA, question: str = "When is the car's next service?", model: str = "default",
         max_new_tokens: int = 96, max_iterations: int = 4) -> None:
    """Ask a ReAct agent whose tool searches a folder of .txt files through gist memory.

    Args:
        folder: a folder of .txt files.
        question: what to ask the agent.
        model: 'default' (the embedded model, offline) or a local model directory.
        max_new_tokens: longest reasoning step, in tokens.
        max_iterations: most reasoning steps before the agent must answer.
    """
    from gist_memory import GistMemory

    with GistMemory(model=model) as memory:
        run(memory, folder, question, max_new_tokens, max_iterations)


if __name__ == "__main__":
    from jsonargparse import CLI

    CLI(main)
