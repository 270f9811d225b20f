"""Model identity covers the weights: a fine-tune never passes for its base (issue 13).

Identities are ``label#digest``; the digest hashes the architecture and the weight files (or,
for a model built in memory, every parameter), so the same weights under another path or dtype
agree and any changed weight disagrees, whichever rows it touched.
"""

import shutil
from pathlib import Path

import pytest
import torch

from gist_memory import GistModel, ModelLoadError
from gist_memory.cache import GistCache
from gist_memory.errors import CacheMismatchError
from gist_memory.loading import is_legacy_identity, weights_digest
from tiny import save_tiny, tiny_gist_model

TEXT = "Harbour log. The keeper saw 12 ships at dawn and wrote the passkey 5521 in red ink."


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    return save_tiny(tmp_path_factory.mktemp("tiny"))


@pytest.fixture(scope="module")
def fine_tune(saved, tmp_path_factory):
    """The base with one deep weight nudged: the config and the embedding rows are untouched."""
    base, _ = saved
    model = GistModel.from_pretrained(base, adapter=None, device="cpu").model
    with torch.no_grad():
        model.model.layers[-1].mlp.down_proj.weight[0, 0] += 0.01
    out = tmp_path_factory.mktemp("fine-tune")
    model.save_pretrained(out)
    for f in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(f"{base}/{f}", out / f)
    return str(out)


def test_a_fine_tune_is_another_model(saved, fine_tune):
    base, adapter = saved
    gm = GistModel.from_pretrained(base, adapter=adapter, device="cpu")
    ft = GistModel.from_pretrained(fine_tune, adapter=None, device="cpu", num_gist_tokens=4, chunk_tokens=48)
    assert torch.equal(gm.model.get_input_embeddings().weight, ft.model.get_input_embeddings().weight)
    assert gm.base_identity.split("#")[1] != ft.base_identity.split("#")[1]
    with pytest.raises(ModelLoadError, match="trained on base model"):
        GistModel.from_pretrained(fine_tune, adapter=adapter, device="cpu")
    with pytest.raises(CacheMismatchError, match="base_model"):
        GistCache.load(gm.compress(TEXT).save(f"{fine_tune}/doc.gist"), expect=ft.cache_identity)


def test_the_same_weights_elsewhere_or_in_bf16_are_the_same_model(saved, tmp_path):
    base, adapter = saved
    copy = shutil.copytree(base, tmp_path / "copy")
    a = GistModel.from_pretrained(base, adapter=adapter, device="cpu")
    b = GistModel.from_pretrained(str(copy), adapter=adapter, device="cpu", dtype="bfloat16")
    assert a.base_identity != b.base_identity  # the label says where it came from ...
    assert a.base_identity.split("#")[1] == b.base_identity.split("#")[1]  # ... the digest what it is


def test_in_memory_models_hash_their_parameters():
    a, b = tiny_gist_model(lora=False), tiny_gist_model(lora=False)
    assert a.base_identity == b.base_identity
    assert tiny_gist_model(lora=False, seed=1).base_identity.split("#")[1] != a.base_identity.split("#")[1]


def test_weight_files_are_hashed_once(saved, monkeypatch):
    import gist_memory.loading as loading

    base, _ = saved
    first = weights_digest(Path(base))
    calls = []
    monkeypatch.setattr(loading, "_sha256", lambda p: calls.append(p) or "x")
    assert weights_digest(Path(base)) == first and not calls


def test_a_hub_cache_file_is_named_by_its_hash(tmp_path, monkeypatch):
    """In a Hugging Face cache a weight file links to ``blobs/<sha256>``: the name is the hash."""
    import gist_memory.loading as loading

    blob = tmp_path / "blobs" / ("ab" * 32)
    blob.parent.mkdir()
    blob.write_bytes(b"weights")
    snap = tmp_path / "snapshot"
    snap.mkdir()
    (snap / "model.safetensors").symlink_to(blob)
    monkeypatch.setattr(loading, "_sha256", lambda p: pytest.fail("a cache blob was re-hashed"))
    assert loading._file_sha256(snap / "model.safetensors") == "ab" * 32
    assert weights_digest(snap) is not None


def test_a_legacy_identity_is_named_in_the_error(saved):
    base, adapter = saved
    gm = GistModel.from_pretrained(base, adapter=adapter, device="cpu")
    old = dict(gm.cache_identity, base_model="tiny#0123456789abcdef")
    assert is_legacy_identity(old["base_model"]) and not is_legacy_identity(gm.base_identity)
    cache = gm.compress(TEXT)
    cache.meta.update(base_model=old["base_model"])
    with pytest.raises(CacheMismatchError, match="gist-memory 0.1.*rebuild=True"):
        GistCache.load(cache.save(f"{base}/old.gist"), expect=gm.cache_identity)


def test_the_shipped_adapter_names_the_default_models_new_identity():
    import json

    from gist_memory.model import DEFAULT_ADAPTER_DIR

    info = json.loads((DEFAULT_ADAPTER_DIR / "gist_config.json").read_text())
    assert not is_legacy_identity(info["base_model"])
