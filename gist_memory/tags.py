"""The gist-tag protocol: how a prompt names a stored gist cache.

Host frameworks (LangChain, LlamaIndex) hand a model text only, so the integrations write a
retrieved chunk's cache into a prompt as a tag, and ``GistMemory.answer_prompt`` reads the tags
back and answers from those caches. The integrations import this module alone.

Text that reaches ``answer_prompt`` is partly written by end users, so a tag is honoured only when
it carries the store's signature of its id (``GistStore.sign``: an HMAC under a secret kept in
the store directory). Only the memory can mint one (``GistMemory.gist_tag``); a tag someone types,
or one with an id of the wrong shape, is ordinary text and reads nothing.

A tag can be bound to a *scope* (``GistMemory.gist_tag(id, scope="tenant-a")``): the signature
then covers the scope, and only a reader of the same scope (``answer_prompt(..., scope=...)``, the
integrations' ``scope`` field) reads it. An app that filters retrieval per tenant or user gives
the retriever and the model that tenant's scope, so a tag minted under one tenant's filters (and
seen in a log, a shared transcript, an earlier answer) is plain text in another tenant's prompt.
"""

from __future__ import annotations

import re

from typing import Callable

from .errors import InputError

#: How a prompt names a gist cache of the store: its id and the store's signature of it.
GIST_REF = '<gist id="{}" sig="{}"/>'
_GIST_REF = re.compile(r'<gist id="([0-9a-f]{64})" sig="([0-9a-f]{32})"/>')


def check_scope(scope) -> str | None:
    """A tag's scope is None (unscoped) or a non-empty str: a tenant, a user, a filter's name."""
    if scope is not None and (not isinstance(scope, str) or not scope):
        raise InputError(f"scope must be None or a non-empty str (a tenant, user or filter name), got {scope!r}")
    return scope


def gist_ref(cache_id: str, signature: str) -> str:
    """The tag that stands for a stored gist cache in a prompt; mint it with ``GistMemory.gist_tag``."""
    return GIST_REF.format(cache_id, signature)


def split_gist_refs(text: str, verify: Callable[[str, str], bool]) -> tuple[str, list[str]]:
    """(``text`` without its verified gist tags, the cache ids they name, in order).

    A tag ``verify(id, signature)`` refuses stays in the text as it was, and names no cache.
    """
    ids: list[str] = []

    def take(match: re.Match) -> str:
        if verify(match.group(1), match.group(2)):
            ids.append(match.group(1))
            return ""
        return match.group(0)

    return _GIST_REF.sub(take, text).strip(), ids


def render_turns(turns) -> str:
    """(role, text) turns as the model reads an earlier conversation: one ``Role: text`` line each."""
    return "\n".join(f"{role.capitalize()}: {text}" for role, text in turns)
