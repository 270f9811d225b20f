"""Walks the table of bad inputs in docs/errors.md: each must fail exactly as its row says.

The table is the one place the expected errors are written down. Each row gives the exception
class and the whole one-line message the user sees, with ``<name>`` standing for a variable part
(a path, a model identity, a library's own wording); the message becomes a regular expression that
must match all of it. This file holds only how to build each bad input: one function per row,
registered under the row's number with ``@case(n)``. So doc and code cannot drift apart: the test
fails when a row has no builder or a builder no row, when the exception is of another class than
the row names (a KeyError, a JSONDecodeError or a torch RuntimeError from deep inside a library
instead of one of ours), when the message spans more than one line, or when it no longer matches
the row. A row that reads "no error: ..." is an input that must be inert; its builder checks that.
Command-line rows name ``SystemExit(2)`` and the one line the command prints on stderr.
"""

from __future__ import annotations

import datetime
import functools
import json
import pickle
import re
import shutil
import threading
from pathlib import Path

import pytest
import torch

from gist_memory import GistMemory
from gist_memory.cache import GistCache
from gist_memory.cli import main as cli
from gist_memory.compress import compress_chunks, split_tokens
from gist_memory.config import GistConfig
from gist_memory.model import GistModel
from tiny import HashEmbedder, save_tiny, tiny_gist_model

DOC = Path(__file__).resolve().parents[1] / "docs" / "errors.md"
K, CHUNK = 4, 48
CONTRACT = "The supplier contract renews automatically every March unless either party cancels in writing. "
QUESTION = "When does the supplier contract renew?"
TEXT = "The lighthouse keeper wrote the passkey 48213 in the logbook before the storm. " * 4

# ------------------------------------------------------------------------------------------ the table
_ROW = re.compile(r"^\| *(\d+) *\| *(.+?) *\| *(.+?) *\|$")
_SEEN = re.compile(r"^`(?P<cls>\w+)(?:\((?P<code>\d+)\))?`: (?P<tick>`+) ?(?P<msg>.+?) ?(?P=tick)$")


def read_table(path: Path = DOC) -> dict[int, dict]:
    """Row number -> {input, cls, code, pattern (None: no error)} for every numbered table row."""
    rows = {}
    for line in path.read_text().splitlines():
        found = _ROW.match(line.strip())
        if not found:
            continue
        number, what, seen = int(found.group(1)), found.group(2), found.group(3)
        assert number not in rows, f"docs/errors.md numbers two rows {number}"
        if seen.startswith("no error"):
            rows[number] = {"input": what, "cls": None, "code": None, "pattern": None}
            continue
        parsed = _SEEN.match(seen)
        assert parsed, f"docs/errors.md row {number}: cannot read {seen!r} as `Class`: `message`"
        rows[number] = {"input": what, "cls": parsed["cls"], "code": parsed["code"],
                        "pattern": message_pattern(parsed["msg"])}
    return rows


def message_pattern(message: str) -> str:
    """A message with ``<name>`` placeholders as a regular expression for the whole real message."""
    parts = re.split(r"<[a-z][a-z ]*>", message.replace("\\|", "|"))
    return ".+?".join(re.escape(p) for p in parts)


ROWS = read_table()
CASES: dict[int, object] = {}


def case(number: int):
    """Register the builder of row ``number``: it makes the bad input and does what the row says."""
    def register(fn):
        assert number not in CASES, f"two builders for row {number}"
        CASES[number] = fn
        return fn
    return register


# ------------------------------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def gm():
    return tiny_gist_model(k=K, chunk_tokens=CHUNK)


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A tiny base model directory and an adapter trained for it, as a user has them on disk."""
    return save_tiny(tmp_path_factory.mktemp("tiny"), k=K, chunk_tokens=CHUNK)


class Ctx:
    """What a builder needs: a scratch directory, the tiny model, saved model files, memories."""

    def __init__(self, tmp: Path, gm, saved, capsys):
        self.tmp, self.gm, self.capsys = tmp, gm, capsys
        self.base, self.adapter = saved
        self._open: list[GistMemory] = []

    def memory(self, name: str = "m", **kwargs) -> GistMemory:
        mem = GistMemory(persist_dir=self.tmp / name, model=kwargs.pop("model", self.gm),
                         embedder=HashEmbedder(), **kwargs)
        self._open.append(mem)
        return mem

    @functools.cached_property
    def mem(self) -> GistMemory:
        """A memory holding one document, 'contract' (two chunks)."""
        mem = self.memory("store")
        mem.add({"text": CONTRACT * 2, "id": "contract", "metadata": {"kind": "legal"}}, progress=False)
        return mem

    def file(self, name: str, content: str | bytes) -> Path:
        path = self.tmp / name
        path.write_bytes(content) if isinstance(content, bytes) else path.write_text(content)
        return path

    def adapter_copy(self) -> Path:
        copy = self.tmp / "adapter"
        shutil.copytree(self.adapter, copy)
        return copy

    def cache_file(self) -> tuple[Path, dict, dict]:
        """A real gist cache file of TEXT, with its tensors and header to make damaged copies from."""
        from safetensors import safe_open

        path = self.gm.compress(TEXT).save(self.tmp / "notes.gist")
        with safe_open(str(path), "pt") as fh:
            return path, {k: fh.get_tensor(k) for k in fh.keys()}, fh.metadata()

    def close(self) -> None:
        for mem in self._open:
            mem.close()


@pytest.fixture
def ctx(tmp_path, gm, saved, capsys):
    c = Ctx(tmp_path, gm, saved, capsys)
    yield c
    c.close()


# ------------------------------------------------------------------------------------------ the walk
def test_every_row_has_a_builder_and_every_builder_a_row():
    assert len(ROWS) >= 25
    assert sorted(ROWS) == list(range(1, len(ROWS) + 1)), "docs/errors.md rows are numbered 1..n in order"
    assert sorted(CASES) == sorted(ROWS), (f"rows without a builder: {sorted(set(ROWS) - set(CASES))}; "
                                           f"builders without a row: {sorted(set(CASES) - set(ROWS))}")


@pytest.mark.parametrize("number", sorted(ROWS))
def test_bad_input_fails_as_the_table_says(number, ctx):
    row, build = ROWS[number], CASES.get(number)
    assert build is not None, f"row {number} ({row['input']}) has no builder"
    if row["cls"] is None:
        build(ctx)
        return
    with pytest.raises(BaseException) as caught:
        build(ctx)
    exc = caught.value
    assert type(exc).__name__ == row["cls"] and type(exc).__module__ in ("builtins", "gist_memory.errors"), (
        f"row {number}: {row['cls']} expected, got {type(exc).__module__}.{type(exc).__name__}: {exc}")
    if isinstance(exc, SystemExit):
        assert str(exc.code) == row["code"], f"row {number}: exit status {exc.code}"
        message = ctx.capsys.readouterr().err.strip()
    else:
        message = str(exc)
    assert message and "\n" not in message, f"row {number}: not one line: {message!r}"
    assert re.fullmatch(row["pattern"], message), f"row {number}: the message is now\n{message}"


# ------------------------------------------------------------------------------------------ documents in
@case(1)
def _(ctx):
    ctx.mem.add("   ")


@case(2)
def _(ctx):
    ctx.mem.add([])


@case(3)
def _(ctx):
    ctx.mem.add(42)


@case(4)
def _(ctx):
    ctx.mem.add({"text": b"raw bytes"})


@case(5)
def _(ctx):
    ctx.mem.add({"body": CONTRACT})


@case(6)
def _(ctx):
    ctx.mem.add({"text": CONTRACT, "metadata": "kind=legal"})


@case(7)
def _(ctx):
    ctx.mem.add(["first text", "second text"], metadata=[{"kind": "legal"}])


@case(8)
def _(ctx):
    ctx.mem.add({"text": CONTRACT, "metadata": {"chunk_index": 3}})


@case(9)
def _(ctx):
    ctx.mem.add({"text": CONTRACT, "metadata": {"signed": datetime.date(2024, 3, 1)}})


@case(10)
def _(ctx):
    ctx.mem.add([{"text": "first text", "id": "x"}, {"text": "second text", "id": "x"}])


@case(11)
def _(ctx):
    ctx.mem.add({"text": "A different contract.", "id": "contract"})


@case(12)
def _(ctx):
    ctx.mem.add(CONTRACT, batch_size=0)


@case(13)
def _(ctx):
    ctx.mem.compress_texts(["Text for another framework's retriever."], batch_size="2")


@case(14)
def _(ctx):
    ctx.memory(chunk_overlap=48)


@case(15)
def _(ctx):
    ctx.memory(chunk_tokens=4096)


@case(16)
def _(ctx):
    ctx.memory(top_k=0)


@case(17)
def _(ctx):
    ctx.gm.compress(" \n ")


@case(18)
def _(ctx):
    compress_chunks(ctx.gm, [[65] * (CHUNK + 1)])


@case(19)
def _(ctx):
    split_tokens(list(range(100)), CHUNK, overlap=CHUNK)


@case(20)
def _(ctx):
    GistConfig(num_gist_tokens=0)


# ------------------------------------------------------------------------------------------ questions
@case(21)
def _(ctx):
    ctx.mem.query("   ")


@case(22)
def _(ctx):
    ctx.mem.query(QUESTION, mode="vector")


@case(23)
def _(ctx):
    ctx.mem.query(QUESTION, top_k=0)


@case(24)
def _(ctx):
    ctx.mem.query(QUESTION, doc_ids=[])


@case(25)
def _(ctx):
    ctx.mem.query(QUESTION, mode="gist", doc_ids=7)


@case(26)
def _(ctx):
    ctx.mem.query(QUESTION, mode="gist", doc_ids=["nope"])


@case(27)
def _(ctx):
    ctx.mem.query(QUESTION, where={"kind": "legal", "year": 2020})


@case(28)
def _(ctx):
    ctx.mem.query(QUESTION, max_new_tokens=0)


@case(29)
def _(ctx):
    ctx.mem.query(QUESTION, temperature=-1)


@case(30)
def _(ctx):
    ctx.memory("empty").query(QUESTION)


@case(31)
def _(ctx):
    mem = ctx.memory("long")
    mem.add({"text": "x " * 1100, "id": "long"}, progress=False)  # 2200 byte tokens, window 2048
    mem.query(QUESTION, mode="full", doc_ids="long")


@case(32)
def _(ctx):
    ctx.mem.answer_from_sources(QUESTION, ["contract::99"])


@case(33)
def _(ctx):
    ctx.mem.answer_from_sources(QUESTION, [42])


@case(34)
def _(ctx):
    ctx.mem.delete("nope")


# ------------------------------------------------------------------------------------------ gist tags, cache ids
def _reads_no_cache(mem, prompt: str) -> None:
    answer = mem.answer_prompt(prompt, max_new_tokens=2)
    assert answer.mode == "none" and answer.kv_entries == answer.prompt_tokens  # no gist entry was read


@case(35)
def _(ctx):
    (cid,) = ctx.mem.compress_texts(["The vault code is 4417."])
    assert ctx.mem.answer_prompt(f"{ctx.mem.gist_tag(cid)} What is the code?", max_new_tokens=2).mode == "gist"
    _reads_no_cache(ctx.mem, f'<gist id="{cid}"/> What is the code?')


@case(36)
def _(ctx):
    (cid,) = ctx.mem.compress_texts(["The vault code is 4417."])
    _reads_no_cache(ctx.mem, f'<gist id="{cid}" sig="{"0" * 32}"/> What is the code?')


@case(37)
def _(ctx):
    other = ctx.memory("other")
    (cid,) = other.compress_texts(["The vault code is 4417."])
    ctx.mem.compress_texts(["The vault code is 4417."])
    _reads_no_cache(ctx.mem, f"{other.gist_tag(cid)} What is the code?")


@case(38)
def _(ctx):
    (ctx.tmp / "etc").mkdir()
    ctx.file("etc/passwd.safetensors", "not a cache")
    ctx.mem.answer_from_caches(QUESTION, ["../../etc/passwd"])


@case(39)
def _(ctx):
    ctx.mem.answer_from_caches(QUESTION, ["0" * 64])


# ------------------------------------------------------------------------------------------ streams
def _half_read(mem):
    """A rag stream read to its first piece (sampled: the tiny random model rarely ends at once)."""
    stream = mem.query(QUESTION, mode="rag", max_new_tokens=40, stream=True, temperature=1.0)
    next(iter(stream))
    return stream


@case(40)
def _(ctx):
    stream = _half_read(ctx.mem)
    try:
        ctx.mem.add("Another document about lighthouses.", progress=False)
    finally:
        stream.close()


@case(41)
def _(ctx):
    mem = ctx.memory(gate_timeout_s=0.2)
    mem.add(CONTRACT, progress=False)
    stream, errors = _half_read(mem), []

    def other_thread():
        try:
            mem.query(QUESTION, mode="gist", max_new_tokens=2)
        except Exception as exc:  # noqa: BLE001  (handed to the test's thread)
            errors.append(exc)

    worker = threading.Thread(target=other_thread)
    try:
        worker.start()
        worker.join(timeout=30)
    finally:
        stream.close()
    assert not worker.is_alive() and errors
    raise errors[0]


@case(42)
def _(ctx):
    ctx.memory(gate_timeout_s=0)


# ------------------------------------------------------------------------------------------ the store directory
@case(43)
def _(ctx):
    ctx.file("notes.txt", "my own notes")
    GistMemory(persist_dir=ctx.tmp, model=ctx.gm, embedder=HashEmbedder())


@case(44)
def _(ctx):
    GistMemory(model=ctx.gm, embedder=HashEmbedder(), read_only=True)


@case(45)
def _(ctx):
    ctx.memory("nothing-here", read_only=True)


@case(46)
def _(ctx):
    ctx.mem.close()
    ctx.memory("store", read_only=True).add("A new text.", progress=False)


@case(47)
def _(ctx):
    (ctx.tmp / "empty").mkdir()
    GistMemory.load(ctx.tmp / "empty", model=ctx.gm, embedder=HashEmbedder())


@case(48)
def _(ctx):
    ctx.file("notes.txt", "my own notes")
    ctx.mem.save(ctx.tmp)


@case(49)
def _(ctx):
    ctx.mem.close()
    ctx.memory("store", chunk_tokens=24)


def _damaged_manifest(ctx, edit) -> GistMemory:
    """Open the store after ``edit`` changed its store.json (a str: the file's new content)."""
    ctx.mem.close()
    path = ctx.tmp / "store" / "store.json"
    path.write_text(edit if isinstance(edit, str) else json.dumps(edit(json.loads(path.read_text()))))
    return GistMemory.load(ctx.tmp / "store", model=ctx.gm, embedder=HashEmbedder())


@case(50)
def _(ctx):
    _damaged_manifest(ctx, '{"format": "gist-memory-store", "format_version": 1, "build"')


@case(51)
def _(ctx):
    _damaged_manifest(ctx, '{"hello": "world"}')


@case(52)
def _(ctx):
    _damaged_manifest(ctx, lambda m: dict(m, format_version=99))


@case(53)
def _(ctx):
    _damaged_manifest(ctx, lambda m: {k: v for k, v in m.items() if k != "built_with"})


@case(54)
def _(ctx):
    _damaged_manifest(ctx, lambda m: dict(m, build={k: v for k, v in m["build"].items() if k != "embedder"}))


@case(55)
def _(ctx):
    _damaged_manifest(ctx, lambda m: dict(m, chunking=[48, 0]))


# ------------------------------------------------------------------------------------------ cache files
@case(56)
def _(ctx):
    GistCache.load(ctx.file("evil.gist", pickle.dumps({"keys": [1, 2, 3]})))


@case(57)
def _(ctx):
    path, _, _ = ctx.cache_file()
    GistCache.load(ctx.file("cut.gist", path.read_bytes()[:200]))


@case(58)
def _(ctx):
    from safetensors.torch import save_file

    _, tensors, header = ctx.cache_file()
    del tensors["layers.1.values"]
    save_file(tensors, str(ctx.tmp / "holed.gist"), metadata=header)
    GistCache.load(ctx.tmp / "holed.gist")


@case(59)
def _(ctx):
    from safetensors.torch import save_file

    _, tensors, header = ctx.cache_file()
    save_file(tensors, str(ctx.tmp / "new.gist"), metadata=dict(header, format_version="2"))
    GistCache.load(ctx.tmp / "new.gist")


@case(60)
def _(ctx):
    from safetensors.torch import save_file

    _, tensors, header = ctx.cache_file()
    save_file(tensors, str(ctx.tmp / "meta.gist"), metadata=dict(header, meta="[1, 2]"))
    GistCache.load(ctx.tmp / "meta.gist")


@case(61)
def _(ctx):
    from safetensors.torch import save_file

    _, tensors, header = ctx.cache_file()
    forged = {k: v for k, v in tensors.items() if not k.startswith("layers.1.")}  # metadata still says this model
    save_file(forged, str(ctx.tmp / "forged.gist"), metadata=dict(header, num_layers="1"))
    ctx.gm.generate(QUESTION, [GistCache.load(ctx.tmp / "forged.gist", expect=ctx.gm.cache_identity)])


# ------------------------------------------------------------------------------------------ models and adapters
@case(62)
def _(ctx):
    GistModel.from_pretrained("nonexistent-org/not-a-model", adapter=None, device="cpu")


class _Trap:
    """Unpickling this writes a file: proof that a refused model directory was never unpickled."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.write_text, (self.marker, "unpickled!"))


@case(63)
def _(ctx):
    model_dir = ctx.tmp / "pickled"
    shutil.copytree(ctx.base, model_dir)
    for weights in model_dir.glob("*.safetensors"):
        weights.unlink()
    marker = ctx.tmp / "ran"
    torch.save({"trap": _Trap(marker)}, model_dir / "pytorch_model.bin")
    try:
        GistModel.from_pretrained(str(model_dir), adapter=None, device="cpu")
    finally:
        assert not marker.exists(), "the pickled weights were unpickled"


@case(64)
def _(ctx):
    GistModel.from_pretrained(str(ctx.tmp), adapter=None, device="cpu")


@case(65)
def _(ctx):
    GistModel.from_pretrained("./nope", adapter=None, device="cpu")


@case(66)
def _(ctx):
    GistModel.from_pretrained(ctx.base, adapter=None, device="cpu", dtype="float8")


@case(67)
def _(ctx):
    GistModel.from_pretrained(ctx.base, adapter=None, device="tpu")


@case(68)
def _(ctx):
    GistModel.from_pretrained(ctx.base, adapter=None, device="cpu", num_gist_tokens=0)


@case(69)
def _(ctx):
    GistModel.from_pretrained(ctx.base, adapter=str(ctx.tmp), device="cpu")


def _edit_gist_config(ctx, edit) -> None:
    """Load the tiny base with a copy of its adapter whose gist_config.json ``edit`` changed."""
    adapter = ctx.adapter_copy()
    path = adapter / "gist_config.json"
    path.write_text(edit if isinstance(edit, str) else json.dumps(edit(json.loads(path.read_text()))))
    GistModel.from_pretrained(ctx.base, adapter=str(adapter), device="cpu")


@case(70)
def _(ctx):
    _edit_gist_config(ctx, '{"num_gist_tokens": 4,')


@case(71)
def _(ctx):
    _edit_gist_config(ctx, lambda c: {"num_gist_tokens": c["num_gist_tokens"]})


@case(72)
def _(ctx):
    _edit_gist_config(ctx, lambda c: dict(c, format_version=9))


@case(73)
def _(ctx):
    _edit_gist_config(ctx, lambda c: dict(c, num_gist_tokens=0))


@case(74)
def _(ctx):
    adapter = ctx.adapter_copy()
    (adapter / "gist_embeddings.safetensors").unlink()
    GistModel.from_pretrained(ctx.base, adapter=str(adapter), device="cpu")


@case(75)
def _(ctx):
    adapter = ctx.adapter_copy()
    (adapter / "gist_embeddings.safetensors").write_bytes(b"\x00" * 8 + b"{")
    GistModel.from_pretrained(ctx.base, adapter=str(adapter), device="cpu")


@case(106)
def _(ctx):
    gm = GistModel.from_pretrained(ctx.base, adapter=str(ctx.adapter_copy()), device="cpu")
    gm.add_context_lora(1, r=4, alpha=8)
    adapter = gm.save_adapter(ctx.tmp / "with-context")
    (adapter / "context_lora.safetensors").write_bytes(b"\x00" * 8 + b"{")
    GistModel.from_pretrained(ctx.base, adapter=str(adapter), device="cpu")


@case(76)
def _(ctx):
    adapter = ctx.adapter_copy()
    lora = adapter / "adapter_model.safetensors"
    lora.write_bytes(lora.read_bytes()[:100])
    GistModel.from_pretrained(ctx.base, adapter=str(adapter), device="cpu")


@case(77)
def _(ctx):
    adapter = ctx.adapter_copy()
    (adapter / "adapter_model.safetensors").unlink()
    marker = ctx.tmp / "ran"
    torch.save({"trap": _Trap(marker)}, adapter / "adapter_model.bin")
    try:
        GistModel.from_pretrained(ctx.base, adapter=str(adapter), device="cpu")
    finally:
        assert not marker.exists(), "the pickled adapter was unpickled"


@case(78)
def _(ctx):
    GistModel.from_pretrained(ctx.base, adapter=ctx.adapter, device="cpu", num_gist_tokens=8)


@case(79)
def _(ctx):
    other, _ = save_tiny(ctx.tmp / "other", k=K, chunk_tokens=CHUNK, seed=1, adapter=False)
    GistModel.from_pretrained(other, adapter=ctx.adapter, device="cpu")


# ------------------------------------------------------------------------------------------ training config
@case(80)
def _(ctx):
    from trainers.config import TrainConfig

    TrainConfig(task_mix={"poetry": 1.0})


@case(81)
def _(ctx):
    from trainers.config import TrainConfig

    TrainConfig(collections=("sotu", "man-pages"))


@case(82)
def _(ctx):
    from trainers.config import TrainConfig

    TrainConfig(recipe="distill")


@case(83)
def _(ctx):
    from trainers.config import TrainConfig

    TrainConfig(chunk_tokens=256)  # the default curriculum goes up to 512-token chunks


@case(84)
def _(ctx):
    from trainers.config import TrainConfig

    TrainConfig.from_yaml(ctx.file("run.yaml", "stages:\n  - {until_step: 100, min_tokens: 64, max_token: 256}\n"))


@case(85)
def _(ctx):
    from trainers.config import TrainConfig

    TrainConfig.from_yaml(ctx.file("run.yaml", "lr: 1e-3\n"))


@case(86)
def _(ctx):
    from trainers.config import TrainConfig

    TrainConfig.from_yaml(ctx.file("run.yaml", "learning_rate: 0.001\n"))


@case(87)
def _(ctx):
    from trainers.config import TrainConfig

    TrainConfig.from_yaml(ctx.file("run.yaml", "lr: 0.001\nstages: [{until_step: 100\n"))


@case(88)
def _(ctx):
    import yaml

    from trainers.config import TrainConfig
    from trainers.train import check_resume

    run = ctx.tmp / "run"
    (run / "checkpoint").mkdir(parents=True)
    (run / "checkpoint" / "trainer_state.json").write_text("{}")
    (run / "config.yaml").write_text(yaml.safe_dump(TrainConfig(num_gist_tokens=8).to_dict()))
    check_resume(run, TrainConfig(num_gist_tokens=4))


# ------------------------------------------------------------------------------------------ the command line
@case(89)
def _(ctx):
    cli(["compress", str(ctx.tmp / "missing.txt")])


@case(90)
def _(ctx):
    cli(["compress", str(ctx.file("data.bin", bytes(range(256))))])


@case(91)
def _(ctx):
    cli(["compress", str(ctx.file("latin.txt", "caf\xe9 cr\xe8me".encode("latin-1")))])


@case(92)
def _(ctx):
    cli(["compress", str(ctx.file("empty.txt", " \n\t\n"))])


@case(93)
def _(ctx):
    (ctx.tmp / "out").mkdir()
    cli(["compress", str(ctx.file("notes.txt", TEXT)), "--model", ctx.base, "-o", str(ctx.tmp / "out")])


@case(94)
def _(ctx):
    cli(["ask", str(ctx.file("evil.gist", pickle.dumps({"keys": [1, 2, 3]}))), "What?"])


@case(95)
def _(ctx):
    cli(["info", str(ctx.file("notes.txt", TEXT))])


@case(96)
def _(ctx):
    cli(["compress", str(ctx.file("notes.txt", TEXT)), "--model", "./nope"])


@case(98)
def _(ctx):
    cli(["compress", str(ctx.file("notes.txt", TEXT)), "--gist-tokens", "0"])


@case(97)
def _(ctx):
    cli(["compress", str(ctx.file("notes.txt", TEXT)), "--model", ctx.base, "--device", "tpu"])


@case(105)
def _(ctx):
    try:
        cli(["mask", "-o", str(ctx.tmp / "mask.png"), "--gist-tokens", "0"])
    finally:
        assert not (ctx.tmp / "mask.png").exists()


# ------------------------------------------------------------------------------------ tag scopes
@case(99)
def _(ctx):
    (cid,) = ctx.mem.compress_texts(["The vault code is 4417."])
    tag = ctx.mem.gist_tag(cid, scope="tenant-a")
    assert ctx.mem.answer_prompt(f"{tag} What is the code?", max_new_tokens=2, scope="tenant-a").mode == "gist"
    answer = ctx.mem.answer_prompt(f"{tag} What is the code?", max_new_tokens=2, scope="tenant-b")
    assert answer.mode == "none" and answer.kv_entries == answer.prompt_tokens


@case(100)
def _(ctx):
    (cid,) = ctx.mem.compress_texts(["The vault code is 4417."])
    ctx.mem.gist_tag(cid, scope="")


# ------------------------------------------------------------------------------------------ damaged store files
@case(101)
def _(ctx):
    ctx.mem.close()
    (ctx.tmp / "store" / "catalog.sqlite").write_bytes(b"not a database " * 80)
    ctx.memory("store", read_only=True)


@case(102)
def _(ctx):
    (cid,) = ctx.mem.compress_texts(["The vault code is 4417."])
    (ctx.tmp / "store" / "tag.key").write_bytes(b"")
    ctx.mem.gist_tag(cid)


@case(103)
def _(ctx):
    ctx.mem.close()
    (ctx.tmp / "store" / "chroma" / "chroma.sqlite3").write_bytes(b"not a database " * 80)
    ctx.memory("store")


@case(104)
def _(ctx):
    ctx.mem.store.cache_path(ctx.mem.store.chunks_of(["contract"])[1]["cache_id"]).unlink()
    ctx.mem.query(QUESTION, mode="gist", max_new_tokens=2)
