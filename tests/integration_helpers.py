"""A tiny GistMemory for the integration tests: a 2-layer random model, a hashing embedder, made-up documents."""

from __future__ import annotations

import functools

from tiny import HashEmbedder, tiny_documents, tiny_gist_model


def tiny_memory(n_docs: int = 4, **kwargs):
    """A fresh in-memory GistMemory holding ``n_docs`` made-up documents (ids doc0, doc1, ...)."""
    from gist_memory import GistMemory

    gm = tiny_gist_model()
    # The byte-level tokenizer spends a token per character: ReAct's system prompt alone is ~2300
    # tokens, past tiny.py's 2048 positions. RoPE extends to any position, so widen the window.
    gm.model.config.max_position_embeddings = 8192
    memory = GistMemory(model=gm, embedder=HashEmbedder(), **kwargs)
    if n_docs:
        memory.add(tiny_documents(n_docs, sentences=4), progress=False)
    return memory


@functools.cache
def shared_memory():
    """One tiny memory for a whole test session (the standard suites build many models from params)."""
    return tiny_memory()


class ScriptedModel:
    """Scripted replies where a generation reads no gist cache, the tiny model where it does.

    A tiny random model writes noise, so an agent's reasoning steps cannot be left to it. Here the
    forward pass of a cache-less generation is replaced: its logits pick the next token of
    ``reply(prompt)`` (``prompt``: the decoded tokens the model was given), then end of turn.
    Everything above the forward pass runs as it does for a real model: the prompt, decoding, stop
    strings, the memory, the adapters and the host framework. A generation on gist caches (a
    tool's ``memory.query``) runs the tiny model itself. ``prompts`` records what the script read.
    """

    def __init__(self, memory, reply, monkeypatch):
        import torch

        import gist_memory.generate as generation

        self.prompts: list[str] = []
        real, tokenizer = generation.forward_on_cache, memory.gm.tokenizer
        vocab = memory.gm.model.config.vocab_size

        def forward_on_cache(gm, cache, ids, past=None, start=None):
            if isinstance(past, list):  # a scripted reply: the tokens it has left
                pending = past
            elif cache is None and past is None:
                prompt = tokenizer.decode(list(ids))
                self.prompts.append(prompt)
                pending = tokenizer(reply(prompt), add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
                start = 0
            else:
                return real(gm, cache, ids, past=past, start=start)
            logits = torch.full((1, 1, vocab), float("-inf"))
            logits[0, 0, pending[0]] = 0.0
            return logits, pending[1:], start

        monkeypatch.setattr(generation, "forward_on_cache", forward_on_cache)


def react_script(action: str, query: str):
    """A ReAct model's replies for ``ScriptedModel``: call ``action`` with ``query``, then answer
    with the observation it gets back. (The tiny models end a generation at token id 1, which is
    the byte '"', so the action input is quoted with '; ReAct's parser reads that too.)"""

    def reply(prompt: str) -> str:
        # The prompt is the earlier messages as text, then "Question: " and the newest message.
        last = prompt.rsplit("Question: ", 1)[-1].removesuffix("<|end|><|assistant|>")
        if last.startswith("Observation: "):
            return "Thought: I can answer without using any more tools.\nAnswer: " + last.removeprefix("Observation: ")
        # What a small model often writes next: an observation of its own, which the stop string must cut.
        return (f"Thought: I need my documents.\nAction: {action}\nAction Input: {{'query': '{query}'}}\n"
                "Observation: invented by the model")
    return reply
