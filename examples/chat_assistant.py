"""A chat assistant whose long conversation is kept as gist memory (LangChain ``create_agent``).

    python examples/chat_assistant.py                 # a scripted conversation
    python examples/chat_assistant.py --interactive   # talk to it yourself

GistMemoryMiddleware keeps the last few messages as text; older ones are compressed into gist
caches, a few KV entries per chunk of conversation, which ChatGistMemory reads on every later
turn. The prompt stays short however long the conversation grows.
"""

from __future__ import annotations

TURNS = [
    "Hi! I'm planning a trip to Lake Orta in August.",
    "The cabin is booked under the name Rossi, and the key box code is 4417.",
    "My sister Alma is coming with me; she is allergic to walnuts.",
    "We will take the ferry to San Giulio island on the first day.",
    "What is the key box code?",
    "What is my sister allergic to?",
]


def run(memory, turns: list[str] = TURNS, max_messages: int = 4, keep_messages: int = 2,
        max_new_tokens: int = 32, interactive: bool = False) -> list[str]:
    """Talk to an assistant over ``memory``: the scripted ``turns``, or stdin with ``interactive``."""
    from langchain.agents import create_agent
    from langgraph.checkpoint.memory import InMemorySaver

    from langchain_gist_memory import ChatGistMemory, GistMemoryMiddleware

    agent = create_agent(ChatGistMemory(memory=memory, mode=None, max_tokens=max_new_tokens), tools=[],
                         middleware=[GistMemoryMiddleware(memory, max_messages=max_messages,
                                                          keep_messages=keep_messages)],
                         checkpointer=InMemorySaver())
    config = {"configurable": {"thread_id": "example"}}
    replies = []
    for text in (_stdin() if interactive else turns):
        print(f"\nyou: {text}")
        state = agent.invoke({"messages": [("user", text)]}, config)
        reply = state["messages"][-1]
        gists = state["messages"][0].additional_kwargs.get("gist_cache_ids", [])
        usage = reply.usage_metadata
        print(f"assistant: {reply.content.strip()}")
        print(f"   [{len(gists)} gist caches ({usage['input_token_details']['cache_read']} KV entries) + "
              f"{len(state['messages']) - bool(gists)} messages as text; prefilled "
              f"{usage['input_tokens'] - usage['input_token_details']['cache_read']} tokens]")
        replies.append(reply.content)
    return replies


def _stdin():
    while True:
        try:
            text = input("> ").strip()
        except EOFError:
            return
        if text:
            yield text


def main(model: str = "default", interactive: bool = False, max_messages: int = 4, keep_messages: int = 2,
         max_new_tokens: int = 32) -> None:
    """Chat with an assistant that keeps the older conversation as gist caches.

    Args:
        model: 'default' (the embedded model, offline) or a local model directory.
        interactive: read your messages from stdin instead of the scripted conversation.
        max_messages: messages kept as text before the older ones are compressed.
        keep_messages: recent messages that stay text after a compression.
        max_new_tokens: longest reply, in tokens.
    """
    from gist_memory import GistMemory

    with GistMemory(model=model) as memory:
        run(memory, TURNS, max_messages, keep_messages, max_new_tokens, interactive)


if __name__ == "__main__":
    from jsonargparse import CLI

    CLI(main)
