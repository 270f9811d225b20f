"""The gist-tag protocol: how a prompt names a stored gist cache.

Host frameworks (LangChain, LlamaIndex) hand a model text only, so the integrations write a
retrieved chunk's cache into a prompt as a tag, and ``GistMemory.answer_prompt`` reads the tags
back and answers from those caches. The integrations import this module alone.
"""

from __future__ import annotations

import re

#: How a prompt names a gist cache of the store. Host frameworks (LangChain, LlamaIndex) hand a model
#: text only, so the integrations write a cache into a prompt as this tag and ``answer_prompt`` reads it.
GIST_REF = '<gist id="{}"/>'
_GIST_REF = re.compile(r'<gist id="([^"<>\s]+)"/>')


def gist_ref(cache_id: str) -> str:
    """The tag that stands for a stored gist cache in a prompt (see ``GistMemory.answer_prompt``)."""
    return GIST_REF.format(cache_id)


def split_gist_refs(text: str) -> tuple[str, list[str]]:
    """(``text`` without its gist tags, the cache ids they name, in order)."""
    return _GIST_REF.sub("", text).strip(), _GIST_REF.findall(text)


def render_turns(turns) -> str:
    """(role, text) turns as the model reads an earlier conversation: one ``Role: text`` line each."""
    return "\n".join(f"{role.capitalize()}: {text}" for role, text in turns)
