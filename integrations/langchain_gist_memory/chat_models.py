"""ChatGistMemory: a LangChain chat model that answers from a GistMemory."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LangSmithParams
from langchain_core.language_models.chat_models import generate_from_stream
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, UsageMetadata
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from pydantic import Field, field_validator, model_validator

from gist_memory.config import Mode

from ._messages import split_question



def usage_metadata(answer) -> UsageMetadata:
    """Tokens of an Answer: input counts the gist entries read from cache plus the prefilled prompt."""
    cached = answer.kv_entries - answer.prompt_tokens
    return UsageMetadata(input_tokens=answer.kv_entries, output_tokens=answer.output_tokens,
                         total_tokens=answer.kv_entries + answer.output_tokens,
                         input_token_details={"cache_read": cached})


def response_metadata(answer, model_name: str) -> dict[str, Any]:
    """Where an answer came from and what it cost, JSON-serialisable."""
    return {"model_name": model_name, "model_provider": "gist_memory", "mode": answer.mode,
            "sources": [s.chunk_id for s in answer.sources], "kv_entries": answer.kv_entries,
            "kv_bytes": answer.kv_bytes, "timings": dict(answer.timings)}


class ChatGistMemory(BaseChatModel):
    """Chat model over a ``GistMemory``: answers from gist caches of your documents.

    The last human message is the question and earlier messages go before it as text. Gist caches
    named in the messages (by ``format_gist_refs``, ``GistMemoryCompressor`` or
    ``GistMemoryMiddleware``) are read instead of text; with none, ``mode`` decides what the
    model reads from the memory's store, as ``GistMemory.query`` does.

    Setup:
        ``pip install "gist-memory[langchain]"``; everything runs offline on CPU.

        .. code-block:: python

            from gist_memory import GistMemory
            from langchain_gist_memory import ChatGistMemory

            memory = GistMemory(persist_dir="./my_memory")
            memory.add(["The vault code is 4417.", "The meeting moved to Friday."])
            llm = ChatGistMemory(memory=memory, mode="hybrid", top_k=2)

    Invoke:
        .. code-block:: python

            msg = llm.invoke("What is the vault code?")
            msg.content                       # the answer
            msg.usage_metadata                # input tokens = gist entries read + prompt
            msg.response_metadata["sources"]  # chunk ids the answer drew on

    Stream:
        .. code-block:: python

            for chunk in llm.stream("When is the meeting?"):
                print(chunk.content, end="")

    Per call: ``llm.invoke(q, mode="rag", top_k=1, stop=["\\n"])``. Tool calling, structured
    output and images are not supported (a 135M model without function-calling training).
    """

    memory: Any = Field(description="The GistMemory to answer from, or the path of a memory directory "
                                    "(opened with GistMemory.load).", exclude=True)
    mode: Mode | None = Field(default="hybrid", description="What to read from the store when the messages "
                              "name no gist caches: 'hybrid' (top-k chunks' gist caches), 'gist' (all chunks of "
                              "the retrieved documents), 'rag' (top-k chunks' text), 'full' (whole documents' text), "
                              "or None (the messages alone).")
    top_k: int | None = Field(default=None, ge=1, description="Chunks to retrieve; None: the memory's top_k.")
    max_tokens: int = Field(default=64, ge=1, description="Most tokens to generate.")
    temperature: float = Field(default=0.0, ge=0.0, description="0 decodes greedily; above 0 samples.")
    stop: list[str] | None = Field(default=None, alias="stop_sequences",
                                   description="Strings that end the answer (not included in it).")
    streaming: bool = Field(default=False, description="Stream internally when invoked (for callbacks).")
    scope: str | None = Field(default=None, description="Read only gist tags minted for this scope (a tenant or "
                              "user id; the retriever's or compressor's scope); None reads unscoped tags.")
    model_name: str = Field(default="", alias="model", description="The base model's identity; set from the "
                            "memory.")

    model_config = {"populate_by_name": True}

    @field_validator("memory", mode="before")
    @classmethod
    def _open_memory(cls, value: Any) -> Any:
        from gist_memory.memory import as_memory

        return as_memory(value)

    @model_validator(mode="after")
    def _name_model(self) -> "ChatGistMemory":
        if not self.model_name:
            self.model_name = self.memory.gm.base_identity
        return self

    @property
    def _llm_type(self) -> str:
        return "gist-memory-chat"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model_name": self.model_name, "mode": self.mode, "top_k": self.top_k,
                "max_tokens": self.max_tokens, "temperature": self.temperature}

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> LangSmithParams:
        params = LangSmithParams(ls_provider="gist_memory", ls_model_name=kwargs.get("model", self.model_name),
                                 ls_model_type="chat", ls_temperature=kwargs.get("temperature", self.temperature),
                                 ls_max_tokens=kwargs.get("max_tokens", self.max_tokens))
        if stop or self.stop:
            params["ls_stop"] = stop or self.stop
        return params

    def _answer(self, messages: list[BaseMessage], stop: list[str] | None, stream: bool, **kwargs: Any):
        question, history = split_question(messages)
        return self.memory.answer_prompt(
            question, history, mode=kwargs.get("mode", self.mode), top_k=kwargs.get("top_k", self.top_k),
            max_new_tokens=kwargs.get("max_tokens", self.max_tokens),
            temperature=kwargs.get("temperature", self.temperature), stop=stop or self.stop, stream=stream,
            scope=self.scope)

    def _generate(self, messages: list[BaseMessage], stop: list[str] | None = None,
                  run_manager: CallbackManagerForLLMRun | None = None, **kwargs: Any) -> ChatResult:
        if self.streaming:
            return generate_from_stream(self._stream(messages, stop, run_manager, **kwargs))
        answer = self._answer(messages, stop, stream=False, **kwargs)
        message = AIMessage(content=answer.text, usage_metadata=usage_metadata(answer),
                            response_metadata=response_metadata(answer, kwargs.get("model", self.model_name)))
        return ChatResult(generations=[ChatGeneration(message=message)])

    def _stream(self, messages: list[BaseMessage], stop: list[str] | None = None,
                run_manager: CallbackManagerForLLMRun | None = None, **kwargs: Any) -> Iterator[ChatGenerationChunk]:
        pieces = self._answer(messages, stop, stream=True, **kwargs)
        for piece in pieces:
            chunk = ChatGenerationChunk(message=AIMessageChunk(content=piece))
            if run_manager:
                run_manager.on_llm_new_token(piece, chunk=chunk)
            yield chunk
        answer = pieces.answer  # usage and sources travel once, on the last chunk
        yield ChatGenerationChunk(message=AIMessageChunk(
            content="", usage_metadata=usage_metadata(answer), chunk_position="last",
            response_metadata=response_metadata(answer, kwargs.get("model", self.model_name))))
