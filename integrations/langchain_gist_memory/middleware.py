"""GistMemoryMiddleware: an agent's long conversation kept as gist caches (``create_agent`` middleware)."""

from __future__ import annotations

import asyncio
from typing import Any

from langchain.agents.middleware import AgentMiddleware, AgentState
from langchain_core.messages import AnyMessage, HumanMessage, RemoveMessage, ToolMessage
from langgraph.graph.message import REMOVE_ALL_MESSAGES
from langgraph.runtime import Runtime

from ._messages import to_turns

#: ``additional_kwargs["lc_source"]`` of the message that stands for the compressed conversation.
SOURCE = "gist_memory"


class GistMemoryMiddleware(AgentMiddleware):
    """Compresses the older part of a long conversation into gist caches, the way
    ``SummarizationMiddleware`` summarises it, but without writing a summary.

    When the conversation grows past ``max_messages``, all but the last ``keep_messages`` are
    compressed (``GistMemory.compress_texts``) and replaced by one message that names their gist
    caches. ``ChatGistMemory`` over the same memory reads those caches instead of the old text;
    each later compression adds caches to the same message. A tool call and its results are
    never split.

    Setup:
        .. code-block:: python

            from langchain.agents import create_agent
            from langgraph.checkpoint.memory import InMemorySaver
            from langchain_gist_memory import ChatGistMemory, GistMemoryMiddleware

            agent = create_agent(ChatGistMemory(memory=memory, mode=None), tools=[],
                                 middleware=[GistMemoryMiddleware(memory, max_messages=8, keep_messages=2)],
                                 checkpointer=InMemorySaver())

    Invoke:
        .. code-block:: python

            config = {"configurable": {"thread_id": "1"}}
            agent.invoke({"messages": [("user", "I parked on level 3.")]}, config)
            ...  # many turns later, level 3 lives in a gist cache
            agent.invoke({"messages": [("user", "Where did I park?")]}, config)

    ``create_agent`` with tools needs a model with tool calling, which ``ChatGistMemory`` has not;
    with ``tools=[]`` it runs as a chat assistant. The middleware works with any chat model, but
    only ``ChatGistMemory`` reads the caches (others see the tags as text). ``scope`` binds the
    tags to a ``ChatGistMemory`` of the same ``scope`` (one per user, say): see ``gist_memory.tags``.
    """

    def __init__(self, memory: Any, *, max_messages: int = 12, keep_messages: int = 4,
                 scope: str | None = None) -> None:
        from gist_memory.memory import as_memory
        from gist_memory.tags import check_scope

        super().__init__()
        if not isinstance(keep_messages, int) or keep_messages < 1:
            raise ValueError(f"keep_messages must be a positive integer, got {keep_messages!r}")
        if not isinstance(max_messages, int) or max_messages <= keep_messages:
            raise ValueError(f"max_messages must be an integer above keep_messages={keep_messages}, "
                             f"got {max_messages!r}")
        self.memory = as_memory(memory)
        self.max_messages = max_messages
        self.keep_messages = keep_messages
        self.scope = check_scope(scope)  # the tags' scope: give the agent's ChatGistMemory the same one

    def before_model(self, state: AgentState, runtime: Runtime) -> dict[str, Any] | None:
        """Past ``max_messages``, replace the oldest messages by a message naming their gist caches."""
        from gist_memory.tags import render_turns

        cache_ids, conversation = [], []
        for message in state["messages"]:
            if message.additional_kwargs.get("lc_source") == SOURCE:
                cache_ids += message.additional_kwargs["gist_cache_ids"]
            else:
                conversation.append(message)
        if len(conversation) <= self.max_messages:
            return None
        cut = _cutoff(conversation, len(conversation) - self.keep_messages)
        cache_ids += self.memory.compress_texts([render_turns(to_turns(conversation[:cut]))])
        gists = HumanMessage(content="Earlier conversation, kept as gist memory: "
                                     + " ".join(self.memory.gist_tag(c, self.scope) for c in cache_ids),
                             additional_kwargs={"lc_source": SOURCE, "gist_cache_ids": cache_ids})
        return {"messages": [RemoveMessage(id=REMOVE_ALL_MESSAGES), gists, *conversation[cut:]]}

    async def abefore_model(self, state: AgentState, runtime: Runtime) -> dict[str, Any] | None:
        return await asyncio.to_thread(self.before_model, state, runtime)


def _cutoff(messages: list[AnyMessage], index: int) -> int:
    """Move the cut past tool results, so no tool result is kept without the call that asked for it."""
    while index < len(messages) and isinstance(messages[index], ToolMessage):
        index += 1
    return index
