"""GistMemoryBlock: old conversation held as gist caches, a memory block for llama_index Memory."""

from __future__ import annotations

import asyncio
from typing import Any, List, Optional

from llama_index.core.base.llms.types import ChatMessage
from llama_index.core.bridge.pydantic import Field, PrivateAttr
from llama_index.core.memory.memory import BaseMemoryBlock


class GistMemoryBlock(BaseMemoryBlock[str]):
    """Holds the messages ``Memory`` flushes from its short-term queue as gist caches.

    Each flush is compressed once (``GistMemory.compress_texts``) into gist caches kept in the
    memory's store; their ids are this block's state (``cache_ids``). What goes back into the
    prompt is the caches' gist tags, which ``GistMemoryLLM`` over the same memory reads instead of
    the old text; with ``as_text=True`` it is instead what the gist model recalls from those caches
    about the latest user message, as plain text for any LLM.

    Setup:
        .. code-block:: python

            from llama_index.core.chat_engine import SimpleChatEngine
            from llama_index.core.memory import Memory
            from llama_index.llms.gist_memory import GistMemoryLLM
            from llama_index.memory.gist_memory import GistMemoryBlock

            chat_memory = Memory.from_defaults(token_limit=400, chat_history_token_ratio=0.5,
                                               token_flush_size=100,
                                               memory_blocks=[GistMemoryBlock(memory=memory)])
            engine = SimpleChatEngine.from_defaults(llm=GistMemoryLLM(memory), memory=chat_memory)

    Chat:
        .. code-block:: python

            engine.chat("I parked on level 3.")
            ...  # once the queue passes its limit, level 3 is in a gist cache
            engine.chat("Where did I park?")
    """

    name: str = Field(default="gist_memory", description="The name of the memory block.")
    cache_ids: List[str] = Field(default_factory=list, description="Gist caches of the flushed conversation, "
                                 "oldest first, in the memory's store.")
    as_text: bool = Field(default=False, description="Return what the gist model recalls about the latest user "
                          "message as text (for any LLM) instead of the caches' gist tags (for GistMemoryLLM).")
    scope: Optional[str] = Field(default=None, description="Binds the gist tags to readers of this scope (a "
                                 "tenant or user id): a GistMemoryLLM with another scope reads them as plain text.")

    _memory: Any = PrivateAttr()

    def __init__(self, memory: Any, **kwargs: Any) -> None:
        from gist_memory.memory import as_memory

        super().__init__(**kwargs)
        self._memory = as_memory(memory)

    @classmethod
    def class_name(cls) -> str:
        return "GistMemoryBlock"

    async def _aput(self, messages: List[ChatMessage]) -> None:
        from gist_memory.tags import render_turns
        from llama_index.llms.gist_memory.base import message_turns

        turns = [(role, text) for role, text in message_turns(messages) if text.strip()]
        if turns:
            self.cache_ids += await asyncio.to_thread(self._memory.compress_texts, [render_turns(turns)])

    async def _aget(self, messages: Optional[List[ChatMessage]] = None, **block_kwargs: Any) -> str:
        if not self.cache_ids:
            return ""
        if not self.as_text:
            return " ".join(self._memory.gist_tag(c, self.scope) for c in self.cache_ids)
        question = next((m.content for m in reversed(messages or []) if m.role.value == "user" and m.content), None)
        if question is None:
            return ""
        answer = await asyncio.to_thread(self._memory.answer_from_caches, question, self.cache_ids)
        return answer.text

