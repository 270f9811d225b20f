"""The ``gist-memory`` command: compress a text file once, then answer questions from its cache.

    gist-memory compress notes.txt -o notes.gist        # text -> gist KV cache (safetensors)
    gist-memory ask notes.gist "What is the passkey?"   # answers from the cache alone
    gist-memory info notes.gist                         # entries, bytes, ratio, positions, identity
    gist-memory mask -o mask.png                        # the gist attention mask as a picture

Each subcommand is a plain function below; its typed signature and docstring are its command line
(jsonargparse), so ``gist-memory compress --help`` cannot drift from the code. A mistake of the
user's (a missing or binary file, an empty text, a cache from another model) ends with one line,
``gist-memory: error: ...``, and exit status 2, never a traceback.
"""

from __future__ import annotations

import logging
import os
import sys
import time
import warnings
from pathlib import Path

from jsonargparse import ActionYesNo, ArgumentParser
from jsonargparse.typing import register_type

from .errors import GistMemoryError, InputError
from .units import human_bytes


class IntList(tuple):
    """Comma-separated integers on the command line, e.g. ``--chunk-lengths 6,5``."""


def _int_list(value) -> IntList:
    if isinstance(value, (list, tuple)):
        return IntList(int(v) for v in value)
    try:
        return IntList(int(v) for v in str(value).strip("[]() ").split(",") if v.strip())
    except ValueError:
        raise ValueError(f"expected comma-separated integers such as 6,5, got {value!r}") from None


register_type(IntList, serializer=lambda v: ",".join(map(str, v)), deserializer=_int_list)


class _Parser(ArgumentParser):
    """jsonargparse's parser plus the spellings a shell user expects: ``--gist-tokens`` beside
    ``--gist_tokens`` (the parameter's name), ``-o`` for ``--output``, and bare flags (``--stream``,
    ``--no_stream``) for booleans instead of ``--stream true``."""

    def add_argument(self, *args, **kwargs):
        extra = [a.replace("_", "-") for a in args if a.startswith("--") and "_" in a]
        extra += ["-o"] if "--output" in args else []
        if kwargs.get("type") is bool:
            del kwargs["type"]
            kwargs["action"] = ActionYesNo(no_prefix="no_")
        return super().add_argument(*args, *extra, **kwargs)


def _read_text(file: str) -> str:
    """The UTF-8 text of ``file``, refusing binary, non-UTF-8 and empty files in one line."""
    data = Path(file).read_bytes()
    if b"\x00" in data[:8192]:
        raise InputError(f"{file} looks like a binary file (it holds NUL bytes); give a UTF-8 text file")
    try:
        text = data.decode("utf-8-sig")  # a UTF-8 byte-order mark is not part of the text
    except UnicodeDecodeError as exc:
        raise InputError(f"{file} is not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start}); "
                         "convert it, e.g. `iconv -f latin1 -t utf-8`") from None
    if not text.strip():
        raise InputError(f"{file} is empty (or only whitespace); there is nothing to compress")
    return text


def _load_model(model: str, adapter: str, device: str, dtype: str, load_in_4bit: bool,
                gist_tokens: int | None = None, chunk_tokens: int | None = None):
    from .model import GistModel

    return GistModel.from_pretrained(model, adapter=adapter, device=device, dtype=dtype, load_in_4bit=load_in_4bit,
                                     num_gist_tokens=gist_tokens, chunk_tokens=chunk_tokens)


def _model_source(model: str, adapter: str, gm) -> dict:
    """How to load this model again from any directory: recorded in the cache for ``ask``."""
    local = Path(model).expanduser()
    if gm.adapter_identity == "none":
        adapter = "none"
    elif adapter in ("auto", "default"):
        adapter = "default"
    else:
        adapter = str(Path(adapter).expanduser().resolve())
    return {"model": str(local.resolve()) if model != "default" and local.is_dir() else model, "adapter": adapter}


def compress(file: str, output: str | None = None, model: str = "default", adapter: str = "auto",
             gist_tokens: int | None = None, chunk_tokens: int | None = None, device: str = "auto",
             dtype: str = "auto", load_in_4bit: bool = False, batch_size: int = 8) -> None:
    """Compress a UTF-8 text file into a gist cache file (safetensors).

    Args:
        file: the text file to compress (UTF-8).
        output: the cache file to write; by default FILE with the suffix .gist (notes.txt -> notes.gist).
        model: 'default' (the embedded SmolLM2-135M-Instruct, offline), a local model directory, or a
            Hugging Face id already in the local cache.
        adapter: 'auto' (the shipped adapter for the default model, else none), 'none', 'default', or a
            directory written by the trainer.
        gist_tokens: gist tokens per chunk, k; only without an adapter (an adapter fixes it).
        chunk_tokens: tokens per chunk; only without an adapter (an adapter fixes it).
        device: 'auto' (CUDA when available, else CPU), 'cpu', 'cuda', 'cuda:1' ...
        dtype: 'auto' (float32 on CPU, bfloat16 on CUDA), 'float32', 'bfloat16', 'float16'.
        load_in_4bit: quantise the base model to NF4 with bitsandbytes.
        batch_size: chunks compressed per forward pass.
    """
    text = _read_text(file)
    output = Path(output) if output else Path(file).with_suffix(".gist")
    if output.is_dir():
        raise InputError(f"{output} is a directory; give --output the cache file to write, e.g. "
                         f"{output / Path(file).with_suffix('.gist').name}")
    gm = _load_model(model, adapter, device, dtype, load_in_4bit, gist_tokens, chunk_tokens)
    start = time.perf_counter()
    cache = gm.compress(text, batch_size=batch_size, progress=sys.stderr.isatty())
    seconds = time.perf_counter() - start
    cache.meta["source"] = _model_source(model, adapter, gm)
    output = cache.save(output)
    print(f"{file}: {cache.context_tokens} tokens in {cache.meta['chunks']} chunk(s) -> {cache.num_entries} gist KV "
          f"entries, {human_bytes(cache.nbytes)} ({cache.compression_ratio:.0f}x smaller than the full context's "
          f"KV, {human_bytes(cache.full_context_nbytes)}) in {seconds:.1f} s -> {output}")


def ask(cache: str, question: str, max_new_tokens: int = 64, stream: bool = False, model: str | None = None,
        adapter: str | None = None, device: str = "auto", dtype: str = "auto", load_in_4bit: bool = False) -> None:
    """Answer a question from a gist cache alone; the answer goes to stdout, its costs to stderr.

    Args:
        cache: a cache file written by `gist-memory compress`.
        question: the question to answer.
        max_new_tokens: the most tokens to generate.
        stream: print the answer piece by piece as it is generated.
        model: the base model; by default the one recorded in the cache.
        adapter: the adapter; by default the one recorded in the cache.
        device: 'auto', 'cpu', 'cuda', 'cuda:1' ...
        dtype: 'auto' (float32 on CPU, bfloat16 on CUDA), 'float32', 'bfloat16', 'float16'.
        load_in_4bit: quantise the base model to NF4 with bitsandbytes.
    """
    from .cache import GistCache
    from .loading import DEFAULT_MODEL_NAME

    memory = GistCache.load(cache)
    meta = memory.meta
    # A cache made through the Python API records no source; its base label is then the best guess.
    label = str(meta.get("base_model", "")).split("#")[0]
    source = meta.get("source") or {"model": "default" if label == DEFAULT_MODEL_NAME else label,
                                    "adapter": "none" if meta.get("adapter") == "none" else "auto"}
    gm = _load_model(model or source["model"], adapter or source["adapter"], device, dtype, load_in_4bit,
                     meta.get("num_gist_tokens"), meta.get("chunk_tokens"))
    if stream:
        pieces = gm.generate(question, [memory], max_new_tokens=max_new_tokens, stream=True)
        for piece in pieces:
            print(piece, end="", flush=True)
        print()
        answer = pieces.generation
    else:
        answer = gm.generate(question, [memory], max_new_tokens=max_new_tokens)
        print(answer.text)
    print(f"[{answer.ttft_s * 1000:.0f} ms to first token, {answer.tokens_per_s:.1f} tokens/s, "
          f"{len(answer.token_ids)} tokens; memory: {answer.kv_entries} gist KV entries, "
          f"{human_bytes(answer.kv_bytes)}]", file=sys.stderr)


def _position_runs(positions: list[int]) -> str:
    """``[512..519, 512..519, 300..307]`` -> ``512..519 (x2), 300..307``."""
    runs: list[list[int]] = []
    for p in positions:
        if runs and p == runs[-1][1] + 1:
            runs[-1][1] = p
        else:
            runs.append([p, p])
    grouped: list[list] = []
    for run in runs:
        if grouped and grouped[-1][0] == run:
            grouped[-1][1] += 1
        else:
            grouped.append([run, 1])
    return ", ".join(f"{a}..{b}" + (f" (x{n})" if n > 1 else "") for (a, b), n in grouped)


def info(cache: str) -> None:
    """Describe a gist cache file: its size against the full context's KV, positions and identity.

    Args:
        cache: a cache file written by `gist-memory compress` or `GistCache.save`.
    """
    from .cache import GistCache

    memory = GistCache.load(cache)
    meta = dict(memory.meta)
    source = meta.pop("source", None)
    rows = [
        ("file", f"{cache} ({human_bytes(Path(cache).stat().st_size)})"),
        ("context tokens", f"{memory.context_tokens} in {meta.pop('chunks', 1)} chunk(s)"),
        ("gist KV entries", f"{memory.num_entries} per layer, {memory.num_layers} layers"),
        ("gist KV bytes", f"{memory.nbytes} ({human_bytes(memory.nbytes)})"),
        ("full-context KV", f"{memory.full_context_nbytes} ({human_bytes(memory.full_context_nbytes)})"),
        ("compression", f"{memory.compression_ratio:.1f}x"),
        ("positions", _position_runs(memory.positions.tolist())),
        ("next position", str(memory.next_position)),
    ]
    rows += [(key.replace("_", " "), str(value)) for key, value in sorted(meta.items())]
    if source:
        rows.append(("made with", f"--model {source['model']} --adapter {source['adapter']}"))
    width = max(len(key) for key, _ in rows) + 1
    for key, value in rows:
        print(f"{key + ':':<{width}} {value}")


def mask(output: str = "gist_mask.png", chunk_lengths: IntList = IntList((6, 5)), gist_tokens: int = 2,
         post: int = 4, text: str | None = None, question: str | None = None, answer: str = "",
         model: str = "default", chunk_tokens: int | None = None) -> None:
    """Render the gist attention mask of an example as a PNG, roles labelled on both axes.

    Without --text it draws a synthetic layout (--chunk-lengths, --gist-tokens, --post); with --text
    and --question it tokenizes them with --model's tokenizer and draws the mask training applies.

    Args:
        output: the PNG to write.
        chunk_lengths: synthetic layout: context tokens of each chunk, comma-separated.
        gist_tokens: gist tokens per chunk, k.
        post: synthetic layout: post-gist (question and answer) tokens.
        text: a context text to tokenize and split into chunks of --chunk-tokens.
        question: the question asked after the gists (with --text).
        answer: the answer after the question (with --text).
        model: the model whose tokenizer and chat template are used (with --text).
        chunk_tokens: tokens per chunk (with --text); by default the model's.
    """
    import torch

    from .config import check_gist_settings
    from .mask import episode_layout, gist_attention_allowed
    from .viz import render_mask

    try:  # a mask without gist tokens would draw a picture of nothing the model does
        check_gist_settings(gist_tokens, chunk_tokens, names=("--gist-tokens", "--chunk-tokens"))
    except ValueError as exc:
        raise InputError(str(exc)) from None
    if text is None and question is None:
        if not chunk_lengths or min(chunk_lengths) < 1 or post < 0:
            raise InputError(f"--chunk-lengths needs positive lengths and --post >= 0, got {list(chunk_lengths)}"
                             f" and {post}")
        lengths, post_len, tokens = list(chunk_lengths), post, None
    else:
        if text is None or question is None:
            raise InputError("give both --text and --question (or neither, for a synthetic layout)")
        from .compress import split_tokens, tokenize
        from .generate import answer_ids, prompt_ids

        gm = _load_model(model, "none", "cpu", "float32", False, gist_tokens, chunk_tokens)
        tok = gm.tokenizer
        chunks = split_tokens(tokenize(tok, text), gm.gist.chunk_tokens)
        post_ids = prompt_ids(tok, question) + (answer_ids(tok, answer) if answer else [])
        lengths, post_len = [len(c) for c in chunks], len(post_ids)
        ids = sum(chunks, []) + [None] * (gist_tokens * len(chunks)) + post_ids
        tokens = ["" if i is None else tok.decode([i]) for i in ids]
    # the layout training packs for one episode (no padding): contexts, gists, post-gist tokens
    layout = episode_layout(lengths, gist_tokens, post_len)
    kinds, chunk_of = torch.tensor(layout.kinds), torch.tensor(layout.chunks)
    allowed = gist_attention_allowed(kinds[None], chunk_of[None])[0]
    title = f"gist attention mask: chunks of {lengths} tokens, k={gist_tokens}, {post_len} post-gist tokens"
    path = render_mask(allowed, kinds, chunk_of, output, tokens=tokens, title=title)
    print(f"wrote {path}")


_USER_ERRORS = (GistMemoryError, FileNotFoundError, IsADirectoryError, PermissionError, UnicodeDecodeError)


def _quiet_libraries() -> None:
    """Library progress bars, deprecation notices and optional-kernel notices are noise on a
    command line (our own progress bar still shows); real errors still surface."""
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")  # read by transformers at import
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    if "transformers" in sys.modules:  # imported already (main called from Python): too late for the env
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        hf_logging.set_verbosity_error()
    warnings.filterwarnings("ignore", category=FutureWarning)
    logging.getLogger("bitsandbytes").setLevel(logging.ERROR)


def main(args: list[str] | None = None) -> None:
    """Entry point of the ``gist-memory`` command."""
    from jsonargparse import CLI

    _quiet_libraries()
    try:
        CLI([compress, ask, info, mask], args=args, parser_class=_Parser, prog="gist-memory",
            description="Compress long texts into the KV cache of a few gist tokens; answer from it.")
    except _USER_ERRORS as exc:
        if isinstance(exc, OSError) and exc.filename is not None:
            message = f"{exc.filename}: {exc.strerror}"
        else:
            message = " ".join(str(exc).split())  # one line, whatever the exception held
        print(f"gist-memory: error: {message}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
