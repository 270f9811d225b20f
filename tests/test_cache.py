"""Gist cache files (docs/design.md invariant 5): round trips, identity checks, and refusing bad files."""

import os
import pickle
import subprocess
import sys
import textwrap

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from gist_memory import CacheFormatError, CacheMismatchError, GistCache, GistModel
from gist_memory.cache import check_compatible
from gist_memory.compress import compress_chunks
from gist_memory.generate import forward_on_cache, prompt_ids
from tiny import save_tiny, tiny_gist_model

TEXT = "The passkey is 7341. Remember it; the rest of this text is filler about harbours. " * 3


@pytest.fixture(scope="module")
def gm():
    return tiny_gist_model()


@pytest.fixture(scope="module")
def cache(gm):
    return gm.compress(TEXT)


def test_save_load_round_trip(gm, cache, tmp_path):
    path = cache.save(tmp_path / "doc.gist")
    back = GistCache.load(path, expect=gm.cache_identity)
    assert back.num_entries == cache.num_entries and back.next_position == cache.next_position
    assert back.context_tokens == cache.context_tokens and back.meta == cache.meta
    assert torch.equal(back.positions, cache.positions)
    assert all(torch.equal(a, b) for a, b in zip(back.keys + back.values, cache.keys + cache.values))
    assert not list(tmp_path.glob(".tmp-*"))  # the atomic write left no temp file


def test_cache_reports_its_size(gm, cache):
    chunks = -(-cache.context_tokens // gm.gist.chunk_tokens)
    assert cache.num_entries == chunks * gm.gist.num_gist_tokens
    assert cache.nbytes == cache.num_entries * gm.kv_bytes_per_token()
    assert cache.full_context_nbytes == cache.context_tokens * gm.kv_bytes_per_token()
    assert cache.compression_ratio == cache.context_tokens / cache.num_entries


FRESH = textwrap.dedent("""
    import sys, torch
    from safetensors.torch import save_file
    from gist_memory import GistCache, GistModel
    from gist_memory.generate import forward_on_cache, prompt_ids
    base, adapter, cache_path, out, threads = sys.argv[1:]
    torch.set_num_threads(int(threads))
    gm = GistModel.from_pretrained(base, adapter=adapter, device="cpu")
    cache = GistCache.load(cache_path, expect=gm.cache_identity)
    logits, _, _ = forward_on_cache(gm, cache, prompt_ids(gm.tokenizer, "What is the passkey?"))
    save_file({"logits": logits.contiguous()}, out)
""")


def test_fresh_process_answers_with_identical_logits(tmp_path):
    base, adapter = save_tiny(tmp_path)
    gm = GistModel.from_pretrained(base, adapter=adapter, device="cpu")
    path = gm.compress(TEXT).save(tmp_path / "doc.gist")
    with torch.no_grad():
        here, _, _ = forward_on_cache(gm, GistCache.load(path), prompt_ids(gm.tokenizer, "What is the passkey?"))
    out = tmp_path / "logits.safetensors"
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    subprocess.run([sys.executable, "-c", FRESH, base, adapter, str(path), str(out), str(torch.get_num_threads())],
                   check=True, env=env, capture_output=True)
    assert torch.equal(load_file(str(out))["logits"], here)


def test_mismatch_names_both_sides(gm, cache, tmp_path):
    path = cache.save(tmp_path / "doc.gist")
    other_base = tiny_gist_model(seed=1)
    with pytest.raises(CacheMismatchError, match="base_model") as err:
        GistCache.load(path, expect=other_base.cache_identity)
    assert gm.base_identity in str(err.value) and other_base.base_identity in str(err.value)
    other_adapter = dict(gm.cache_identity, adapter="other#0123456789abcdef")
    with pytest.raises(CacheMismatchError, match="adapter='other#0123456789abcdef'"):
        GistCache.load(path, expect=other_adapter)
    with pytest.raises(CacheMismatchError, match="num_gist_tokens"):
        GistCache.load(path, expect=tiny_gist_model(k=2).cache_identity)
    with pytest.raises(CacheMismatchError):  # generation checks too, not only load
        other_base.generate("What is the passkey?", [cache])


def test_same_model_under_another_path_matches(gm, cache):
    # identities are "label#digest"; the label is only how the model was named (a path, a hub id)
    renamed = dict(gm.cache_identity, base_model="/elsewhere/tiny#" + gm.base_identity.split("#")[1])
    check_compatible(renamed, cache.meta)


def one_line_error(path, match):
    with pytest.raises(CacheFormatError, match=match) as err:
        GistCache.load(path)
    assert "\n" not in str(err.value) and str(path) in str(err.value)


def test_truncated_file(cache, tmp_path):
    path = cache.save(tmp_path / "doc.gist")
    data = path.read_bytes()
    for cut in (len(data) // 2, 40, 5, 0):
        path.write_bytes(data[:cut])
        one_line_error(path, "truncated|not a safetensors")


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):  # unpickling this creates the marker file
        return (open, (self.marker, "w"))


def test_pickles_are_refused_never_unpickled(tmp_path):
    marker = tmp_path / "unpickled"
    raw = tmp_path / "raw.gist"
    raw.write_bytes(pickle.dumps(_Evil(str(marker))))
    one_line_error(raw, "pickle")
    ts = tmp_path / "torch.gist"
    torch.save({"layers.0.keys": torch.zeros(2, 2)}, ts)
    one_line_error(ts, "pickle")
    assert not marker.exists()


def test_random_bytes_and_foreign_safetensors(tmp_path):
    junk = tmp_path / "junk.gist"
    junk.write_bytes(bytes(range(256)) * 4)
    one_line_error(junk, "not a safetensors")
    foreign = tmp_path / "model.safetensors"
    save_file({"weight": torch.zeros(2, 2)}, str(foreign))
    one_line_error(foreign, "not a gist cache")
    one_line_error(tmp_path / "missing.gist", "no such")


def test_corrupted_metadata(cache, tmp_path):
    path = cache.save(tmp_path / "doc.gist")
    tensors = load_file(str(path))
    with safe_open(str(path), "pt") as fh:
        meta = fh.metadata()
    save_file(tensors, str(path), metadata=dict(meta, next_position="twelve"))
    one_line_error(path, "corrupted")
    tensors["positions"] = tensors["positions"][:-1]
    save_file(tensors, str(path), metadata=meta)
    one_line_error(path, "corrupted")
    save_file(load_file(str(cache.save(tmp_path / "v.gist"))), str(path), metadata=dict(meta, format_version="99"))
    one_line_error(path, "format version 99")


def test_concat_keeps_positions_and_takes_max_next_position(gm):
    a, b = compress_chunks(gm, [list(range(65, 65 + 30)), list(range(70, 70 + 10))])
    joined = GistCache.concat([a, b])
    k = gm.gist.num_gist_tokens
    assert joined.positions.tolist() == list(range(30, 30 + k)) + list(range(10, 10 + k))
    assert joined.next_position == 30 + k == max(a.next_position, b.next_position)
    assert joined.context_tokens == 40 and joined.num_entries == 2 * k and joined.meta["chunks"] == 2
    assert torch.equal(joined.keys[0][:, k:], b.keys[0])
    with pytest.raises(CacheMismatchError):
        GistCache.concat([a, tiny_gist_model(seed=1).compress("other text")])
