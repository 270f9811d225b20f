"""GistMemoryLLM: a LlamaIndex LLM that answers from a GistMemory's model and gist caches."""

from __future__ import annotations

from typing import Any, Optional, Sequence

from llama_index.core.base.llms.types import (
    ChatMessage,
    ChatResponse,
    ChatResponseGen,
    CompletionResponse,
    CompletionResponseGen,
    LLMMetadata,
    MessageRole,
    TextBlock,
)
from llama_index.core.bridge.pydantic import Field, PrivateAttr
from llama_index.core.llms.callbacks import llm_chat_callback, llm_completion_callback
from llama_index.core.llms.custom import CustomLLM

from gist_memory.config import Mode


def message_turns(messages: Sequence[ChatMessage]) -> list[tuple[str, str]]:
    """(role, text) per message; a non-text block (image, audio, document) is refused, not dropped."""
    turns = []
    for m in messages:
        other = sorted({type(b).__name__ for b in m.blocks if not isinstance(b, TextBlock)})
        if other:
            raise ValueError(f"gist-memory reads text only; a {m.role.value} message holds {other}. "
                             "Describe it in text instead")
        turns.append((m.role.value, m.content or ""))
    return turns


class GistMemoryLLM(CustomLLM):
    """LLM over a ``GistMemory``: the memory's small model, reading gist caches named in the prompt.

    LlamaIndex engines retrieve and the LLM reads what they put in the prompt: node text, or with
    ``GistMemoryPostprocessor`` the nodes' gist caches (``<gist id="..." sig="..."/>`` tags) instead of their
    text. In chat, the last user message is the question and earlier messages come before it as
    text. ``mode`` (off by default) makes the LLM itself answer from the store when a prompt names
    no caches, as ``GistMemory.query`` does. No function calling: use ``ReActAgent``, not
    ``FunctionAgent``.

    Setup:
        .. code-block:: python

            from gist_memory import GistMemory
            from llama_index.core import Settings
            from llama_index.llms.gist_memory import GistMemoryLLM

            memory = GistMemory(persist_dir="./my_memory")
            Settings.llm = GistMemoryLLM(memory=memory, max_new_tokens=128)

    Complete and chat:
        .. code-block:: python

            Settings.llm.complete("Say hello.").text
            from llama_index.core.llms import ChatMessage
            Settings.llm.chat([ChatMessage(role="user", content="Hi!")]).message.content

    Stream:
        .. code-block:: python

            for r in Settings.llm.stream_complete("Tell me a story."):
                print(r.delta, end="")

    Hybrid query engine:
        .. code-block:: python

            from llama_index.core.query_engine import RetrieverQueryEngine
            from llama_index.postprocessor.gist_memory import GistMemoryPostprocessor
            from llama_index.retrievers.gist_memory import GistMemoryRetriever

            engine = RetrieverQueryEngine.from_args(
                GistMemoryRetriever(memory, similarity_top_k=2),
                node_postprocessors=[GistMemoryPostprocessor(memory)])
            engine.query("What is the vault code?")
    """

    mode: Optional[Mode] = Field(
        default=None, description="What to read from the memory's store when a prompt names no gist caches "
        "('hybrid', 'gist', 'rag', 'full'); None answers from the prompt alone.")
    top_k: Optional[int] = Field(default=None, ge=1, description="Chunks retrieved in a mode; None: the memory's.")
    max_new_tokens: int = Field(default=256, ge=1, description="Most tokens to generate.")
    temperature: float = Field(default=0.0, ge=0.0, description="0 decodes greedily; above 0 samples.")
    stop: Optional[list[str]] = Field(default=None, description="Strings that end the answer (not included).")
    context_window: int = Field(default=0, ge=0, description="Tokens the model attends to; 0: the model's window.")
    scope: Optional[str] = Field(default=None, description="Read only gist tags minted for this scope (a tenant "
                                 "or user id; the postprocessor's scope); None reads unscoped tags.")

    _memory: Any = PrivateAttr()

    def __init__(self, memory: Any, **kwargs: Any) -> None:
        from gist_memory.memory import as_memory

        super().__init__(**kwargs)
        self._memory = as_memory(memory)
        if not self.context_window:
            config = self._memory.gm.model.config.get_text_config()
            self.context_window = getattr(config, "max_position_embeddings", None) or 2048

    @classmethod
    def class_name(cls) -> str:
        return "GistMemoryLLM"

    @property
    def memory(self) -> Any:
        """The GistMemory this LLM reads."""
        return self._memory

    @property
    def metadata(self) -> LLMMetadata:
        return LLMMetadata(context_window=self.context_window, num_output=self.max_new_tokens, is_chat_model=True,
                           is_function_calling_model=False, model_name=self._memory.gm.base_identity,
                           system_role=MessageRole.SYSTEM)

    def _answer(self, prompt: str, history: list[tuple[str, str]], stream: bool, **kwargs: Any):
        return self._memory.answer_prompt(
            prompt, history, mode=kwargs.get("mode", self.mode), top_k=kwargs.get("top_k", self.top_k),
            max_new_tokens=kwargs.get("max_new_tokens", self.max_new_tokens),
            temperature=kwargs.get("temperature", self.temperature), stop=kwargs.get("stop", self.stop),
            stream=stream, scope=self.scope)

    @staticmethod
    def _raw(answer) -> dict[str, Any]:
        return {"mode": answer.mode, "sources": [s.chunk_id for s in answer.sources], "kv_entries": answer.kv_entries,
                "kv_bytes": answer.kv_bytes, "prompt_tokens": answer.prompt_tokens,
                "output_tokens": answer.output_tokens, "timings": dict(answer.timings)}

    @llm_completion_callback()
    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        answer = self._answer(prompt, [], stream=False, **kwargs)
        return CompletionResponse(text=answer.text, raw=self._raw(answer))

    @llm_completion_callback()
    def stream_complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponseGen:
        pieces = self._answer(prompt, [], stream=True, **kwargs)

        def gen() -> CompletionResponseGen:
            text = ""
            for piece in pieces:
                text += piece
                yield CompletionResponse(text=text, delta=piece)
            yield CompletionResponse(text=text, delta="", raw=self._raw(pieces.answer))

        return gen()

    def _split(self, messages: Sequence[ChatMessage]) -> tuple[str, list[tuple[str, str]]]:
        """The last user message is the question; every other message is an earlier turn."""
        turns = message_turns(messages)
        last = next((i for i in range(len(turns) - 1, -1, -1) if turns[i][0] == MessageRole.USER.value), None)
        if last is None:
            raise ValueError("GistMemoryLLM answers the last user message, and these messages have none; "
                             f"got roles {[role for role, _ in turns]}")
        return turns[last][1], turns[:last] + turns[last + 1:]

    @llm_chat_callback()
    def chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        question, history = self._split(messages)
        answer = self._answer(question, history, stream=False, **kwargs)
        return ChatResponse(message=ChatMessage(role=MessageRole.ASSISTANT, content=answer.text), raw=self._raw(answer))

    @llm_chat_callback()
    def stream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponseGen:
        question, history = self._split(messages)
        pieces = self._answer(question, history, stream=True, **kwargs)

        def gen() -> ChatResponseGen:
            text = ""
            for piece in pieces:
                text += piece
                yield ChatResponse(message=ChatMessage(role=MessageRole.ASSISTANT, content=text), delta=piece)
            yield ChatResponse(message=ChatMessage(role=MessageRole.ASSISTANT, content=text), delta="",
                               raw=self._raw(pieces.answer))

        return gen()
