"""LangChain messages as the (role, text) turns ``GistMemory`` reads."""

from __future__ import annotations

from collections.abc import Sequence

from langchain_core.messages import BaseMessage, HumanMessage

#: LangChain message types -> the roles gist-memory renders ("User: ...", "Assistant: ...").
ROLES = {"human": "user", "ai": "assistant", "system": "system", "tool": "tool", "function": "tool"}


def message_text(message: BaseMessage) -> str:
    """The text of a message; a non-text block (image, audio, file) is refused, not dropped."""
    if isinstance(message.content, list):
        kinds = {b.get("type") for b in message.content if isinstance(b, dict)} - {"text"}
        if kinds:
            raise ValueError(f"gist-memory reads text only; a {message.type} message holds {sorted(kinds)} "
                             "content. Describe it in text instead")
    return message.text


def to_turns(messages: Sequence[BaseMessage]) -> list[tuple[str, str]]:
    """(role, text) for each message; a ChatMessage keeps its own role."""
    return [(ROLES.get(m.type, getattr(m, "role", m.type)), message_text(m)) for m in messages]


def split_question(messages: Sequence[BaseMessage]) -> tuple[str, list[tuple[str, str]]]:
    """The last human message is the question; every other message is an earlier turn, in order."""
    last = next((i for i in range(len(messages) - 1, -1, -1) if isinstance(messages[i], HumanMessage)), None)
    if last is None:
        raise ValueError("gist-memory answers the last human message, and these messages have none; "
                         f"got {[m.type for m in messages]}")
    return message_text(messages[last]), to_turns([m for i, m in enumerate(messages) if i != last])
