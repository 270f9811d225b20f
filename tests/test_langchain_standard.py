"""langchain-tests standard suites for ChatGistMemory and GistMemoryRetriever, on a tiny random model.

Unsupported features are switched off through the suites' own properties, so the suites skip
those tests and say why: no tool calling, structured output, JSON mode or multimodal inputs (the
default model is a 135M text model without function-calling training), and no per-call model
override (the model is fixed by the memory's caches: another model could not read them).
"""

from __future__ import annotations

from langchain_tests.integration_tests import ChatModelIntegrationTests, RetrieversIntegrationTests
from langchain_tests.unit_tests import ChatModelUnitTests

from integration_helpers import shared_memory
from langchain_gist_memory import ChatGistMemory, GistMemoryRetriever


class _ChatParams:
    @property
    def chat_model_class(self) -> type[ChatGistMemory]:
        return ChatGistMemory

    @property
    def chat_model_params(self) -> dict:
        return {"memory": shared_memory()}

    @property
    def has_tool_calling(self) -> bool:
        return False

    @property
    def has_structured_output(self) -> bool:
        return False

    @property
    def supports_model_override(self) -> bool:
        return False


class TestChatGistMemoryUnit(_ChatParams, ChatModelUnitTests):
    pass


class TestChatGistMemoryIntegration(_ChatParams, ChatModelIntegrationTests):
    pass


class TestGistMemoryRetrieverIntegration(RetrieversIntegrationTests):
    @property
    def retriever_constructor(self) -> type[GistMemoryRetriever]:
        return GistMemoryRetriever

    @property
    def retriever_constructor_params(self) -> dict:
        return {"memory": shared_memory()}

    @property
    def retriever_query_example(self) -> str:
        return "topic1 river stone"
