"""GistModel loading and saving: adapters, trainable parameters, missing models, 4-bit."""

import pytest
import torch

from gist_memory import GistModel, InputError, ModelLoadError
from gist_memory.generate import forward_on_cache, prompt_ids
from tiny import save_tiny, tiny_gist_model

TEXT = "Harbour log. The keeper saw 12 ships at dawn and wrote the passkey 5521 in red ink. " * 2


def answer_logits(gm, cache):
    with torch.no_grad():
        return forward_on_cache(gm, cache, prompt_ids(gm.tokenizer, "What is the passkey?"))[0]


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    return save_tiny(tmp_path_factory.mktemp("tiny"))


def test_adapter_round_trip_gives_the_same_outputs(saved, tmp_path):
    base, adapter = saved
    gm = GistModel.from_pretrained(base, adapter=adapter, device="cpu")
    again = GistModel.from_pretrained(base, adapter=gm.save_adapter(tmp_path / "copy"), device="cpu")
    assert torch.equal(gm.gist_embeddings, again.gist_embeddings)
    cache = gm.compress(TEXT)
    assert all(torch.equal(a, b) for a, b in zip(cache.keys, again.compress(TEXT).keys))
    assert torch.equal(answer_logits(gm, cache), answer_logits(again, cache))
    # and the adapter matters: without it the same base answers differently
    plain = GistModel.from_pretrained(base, adapter=None, device="cpu", num_gist_tokens=4, chunk_tokens=48)
    assert not torch.equal(plain.compress(TEXT).keys[0], cache.keys[0])


def test_adapter_fixes_the_gist_config(saved):
    base, adapter = saved
    with pytest.raises(ModelLoadError, match="num_gist_tokens=4"):
        GistModel.from_pretrained(base, adapter=adapter, device="cpu", num_gist_tokens=8)


def test_adapter_for_another_base_is_refused(saved, tmp_path):
    _, adapter = saved
    other, _ = save_tiny(tmp_path, seed=1, adapter=False)
    with pytest.raises(ModelLoadError, match="trained on base model"):
        GistModel.from_pretrained(other, adapter=adapter, device="cpu")


def test_only_gist_rows_and_lora_train():
    gm = tiny_gist_model()
    counts = gm.trainable_parameters()
    k, hidden = gm.gist_embeddings.shape
    assert counts["gist_rows"] == k * hidden
    names = [n for n, p in gm.model.named_parameters() if p.requires_grad]
    assert names and all("lora_" in n for n in names)  # no embedding matrix, no lm_head
    assert counts["lora"] == sum(p.numel() for n, p in gm.model.named_parameters() if "lora_" in n)
    assert counts["total"] == counts["gist_rows"] + counts["lora"]
    assert counts["total"] < gm.model.get_input_embeddings().weight.numel()


def test_missing_model_offline_says_how_to_get_it(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelLoadError, match="hf download someorg/no-such-model") as err:
        GistModel.from_pretrained("someorg/no-such-model", device="cpu")
    assert "\n" not in str(err.value)
    with pytest.raises(ModelLoadError, match="no such model directory"):
        GistModel.from_pretrained("./no/such/dir", device="cpu")


def test_a_model_id_not_in_the_cache_fails_fast_even_online(monkeypatch):
    """local_files_only: a missing id is the documented ModelLoadError, never a download attempt."""
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # were anything fetched, it would hang or fail here
    with pytest.raises(ModelLoadError, match="hf download someorg/no-such-model"):
        GistModel.from_pretrained("someorg/no-such-model", device="cpu")


class _Boom:
    """Unpickling this writes a marker file: proof that a pickle was executed."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_pickled_weights_are_refused_never_unpickled(saved, tmp_path):
    import pickle
    import shutil

    base, _ = saved
    evil = tmp_path / "evil"
    shutil.copytree(base, evil)
    for f in evil.glob("*.safetensors"):
        f.unlink()
    marker = tmp_path / "unpickled"
    (evil / "pytorch_model.bin").write_bytes(pickle.dumps(_Boom(str(marker))))
    with pytest.raises(ModelLoadError, match="pickled weights"):
        GistModel.from_pretrained(str(evil), device="cpu")
    assert not marker.exists()


@pytest.mark.parametrize("damage, message", [
    (lambda d: (d / "gist_config.json").write_text("{oops"), "is not valid JSON"),
    (lambda d: (d / "gist_config.json").write_text('{"k": 8}'), "is not a gist adapter config"),
    (lambda d: (d / "gist_config.json").write_text(
        (d / "gist_config.json").read_text().replace('"format_version": 1', '"format_version": 7')), "format version 7"),
    (lambda d: (d / "gist_embeddings.safetensors").unlink(), "gist_embeddings.safetensors is missing or damaged"),
])
def test_a_damaged_adapter_is_a_one_line_error(saved, tmp_path, damage, message):
    import shutil

    base, adapter = saved
    broken = tmp_path / "adapter"
    shutil.copytree(adapter, broken)
    damage(broken)
    with pytest.raises(ModelLoadError, match=message) as err:
        GistModel.from_pretrained(base, adapter=str(broken), device="cpu")
    assert "\n" not in str(err.value)


def test_directory_that_is_not_a_model(tmp_path):
    with pytest.raises(ModelLoadError, match="no config.json"):
        GistModel.from_pretrained(str(tmp_path), device="cpu")


def test_adapter_directory_that_is_not_an_adapter(saved, tmp_path):
    base, _ = saved
    with pytest.raises(ModelLoadError, match="no gist_config.json"):
        GistModel.from_pretrained(base, adapter=str(tmp_path), device="cpu")


@pytest.mark.guarantee  # invariant 7: bitsandbytes 0.50 quantises to NF4 and runs on CPU too (the qlora extra)
def test_load_in_4bit_on_cpu(saved):
    pytest.importorskip("bitsandbytes")
    from bitsandbytes.nn import Linear4bit

    base, adapter = saved
    full = GistModel.from_pretrained(base, adapter=adapter, device="cpu")
    q4 = GistModel.from_pretrained(base, adapter=adapter, device="cpu", load_in_4bit=True)
    assert any(isinstance(m, Linear4bit) for m in q4.model.modules())
    assert q4.cache_identity == full.cache_identity  # a cache from either loads in the other
    cache = q4.compress(TEXT)
    assert cache.num_entries == full.compress(TEXT).num_entries
    a, b = answer_logits(q4, cache), answer_logits(full, cache)
    assert torch.isfinite(a).all() and a.shape == b.shape
    assert not torch.equal(a, b)  # NF4 really quantised the weights
    assert isinstance(q4.generate("What is the passkey?", [cache], max_new_tokens=4).text, str)


@pytest.mark.parametrize("bad", [dict(num_gist_tokens=0), dict(chunk_tokens=4), dict(num_gist_tokens=1000)])
def test_bad_gist_settings_fail_before_loading(bad):
    with pytest.raises(InputError, match=next(iter(bad))):
        GistModel.from_pretrained("./not/loaded/at/all", adapter=None, device="cpu", **bad)
