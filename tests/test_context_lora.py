"""The context LoRA: the top layers read the context through a LoRA of their own (gist_memory/context_lora.py).

What must hold: it starts at zero (an adapter given one is unchanged), it touches only its layers,
the trainer's pool path (frozen KV below, top layers recomputed from the kept hidden state) gives
the logits of compress-then-answer (docs/design.md invariant 2), gradient reaches it, and it
survives save, load, resume and fork.
"""

from __future__ import annotations

import json

import pytest
import torch

from gist_memory import GistModel, ModelLoadError
from gist_memory.compress import context_kv
from tiny import save_tiny, tiny_gist_model
from trainers.pool import Row, chunks_kv, draw_rows
from trainers.pool_forward import context_of, pool_loss
from test_pool import TOL, plans_for, pool_vs_inference

TEXT = "Harbour log. The keeper saw 12 ships at dawn and wrote the passkey 5521 in red ink. " * 2


def _randomise(context_lora, seed: int = 3) -> None:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for b in context_lora.b:
            b.copy_(torch.randn(b.shape, generator=gen) * 0.3)


def _model(layers: int = 2, arch: str = "llama", seed: int = 0):
    """A 3-layer tiny model whose top ``layers`` read the context through a context LoRA. (A gist's
    KV at layer i is made from what it read of the context at layers below i, so the context's
    top-layer KV reaches no gist: one layer of context LoRA changes nothing, two do.)"""
    gm = tiny_gist_model(arch=arch, seed=seed, layers=3)
    gm.add_context_lora(layers, r=4, alpha=8)
    return gm


def test_it_starts_at_zero_and_changes_only_its_own_layers():
    gm = _model()
    ids = [[5, 9, 33, 70, 2, 41, 8]]
    base = context_kv(gm, ids, base=True)
    assert all(torch.equal(a[0], b[0]) for a, b in zip(base, context_kv(gm, ids)))  # B = 0: unchanged
    _randomise(gm.context_lora)
    adapted = context_kv(gm, ids)
    first = gm.context_lora.first_layer
    assert first == 1 and all(torch.equal(a[0], b[0]) for a, b in zip(base[:first], adapted[:first]))
    assert not torch.allclose(base[first][0], adapted[first][0])
    # invariant 4 still holds: what trains is the gist rows, the LoRA and the context LoRA's factors
    counts = gm.trainable_parameters()
    assert counts["context_lora"] == sum(p.numel() for p in gm.context_lora.parameters()) > 0
    trained = {n: p.numel() for n, p in gm.named_parameters() if p.requires_grad}
    assert all(n == "gist_embeddings" or ".lora_" in n or n.startswith("context_lora.") for n in trained)
    assert counts["total"] == sum(trained.values())


@pytest.mark.parametrize("arch", ["llama", "qwen2", "gemma3_text"])
def test_pool_path_matches_compressed_inference(arch):
    """The pool keeps the frozen KV below the context LoRA and the hidden state at its input; the
    step recomputes the top layers. Gists and answers must equal compress-then-answer."""
    gm = _model(arch=arch)
    _randomise(gm.context_lora)
    drawn = chunks_kv(gm, plans_for(gm, [20, 48, 7, 33]))
    assert drawn[0].hidden is not None and len(drawn[0].keys) == gm.context_lora.first_layer
    full = context_kv(gm, [c.ids for c in drawn])
    with torch.no_grad():
        for (k1, v1), (k2, v2) in zip(full, context_of(gm, drawn)):
            for b, c in enumerate(drawn):  # pad columns differ and are masked: compare each chunk's own
                n = len(c.ids)
                assert (k1[b, :, :n] - k2[b, :, :n]).abs().max() <= TOL
                assert (v1[b, :, :n] - v2[b, :, :n]).abs().max() <= TOL
    rows = [Row([1], drawn[1].questions[0]), Row([2, 0, 3], drawn[0].questions[0]), Row([3, 1], drawn[3].questions[0])]
    assert pool_vs_inference(gm, drawn, rows, context=context_of) <= TOL


def test_the_parity_check_bites_when_the_pool_forgets_the_context_lora():
    gm = _model()
    _randomise(gm.context_lora)
    drawn = chunks_kv(gm, plans_for(gm, [20, 30]))
    rows = [Row([0, 1], drawn[0].questions[0])]
    stale = lambda gm, chunks: context_kv(gm, [c.ids for c in chunks], base=True)  # noqa: E731
    assert pool_vs_inference(gm, drawn, rows, context=stale) > 1e-3


def test_gradient_reaches_the_context_lora_through_the_pool_loss():
    gm = _model()
    gm.train()
    drawn = chunks_kv(gm, plans_for(gm, [20, 48, 7]))
    rows = draw_rows(__import__("random").Random(0), drawn, max_chunks=3, questions_per_chunk=1)
    loss, _ = pool_loss(gm, drawn, rows)
    loss.backward()
    # A gist's KV at layer i reads the context's KV at layer i and reads it nowhere else, so the top
    # layer's context LoRA reaches no gist, and below it every layer's k_proj and v_proj do
    top = f"layers.{gm.context_lora.first_layer + gm.context_lora.layers - 1}."
    got = {name: b.grad is not None and b.grad.abs().sum() > 0 for name, b in zip(gm.context_lora.names, gm.context_lora.b)}
    assert not any(v for name, v in got.items() if name.startswith(top))
    assert all(v for name, v in got.items() if not name.startswith(top) and name.endswith(("k_proj", "v_proj")))
    assert gm.gist_embeddings.grad.abs().sum() > 0


def test_an_adapter_with_a_context_lora_round_trips_and_damage_is_one_line(tmp_path):
    base, adapter = save_tiny(tmp_path / "tiny")
    gm = GistModel.from_pretrained(base, adapter=adapter, device="cpu")
    before = gm.compress(TEXT)
    gm.add_context_lora(2, r=4, alpha=8)
    _randomise(gm.context_lora)
    saved = gm.save_adapter(tmp_path / "with-context")
    info = json.loads((saved / "gist_config.json").read_text())
    assert info["format_version"] == 2 and info["context_lora"]["layers"] == 2
    again = GistModel.from_pretrained(base, adapter=str(saved), device="cpu")
    assert again.context_lora is not None and again.trainable_parameters()["context_lora"] == 0
    cache = again.compress(TEXT)
    assert all(torch.equal(a, b) for a, b in zip(cache.keys, gm.compress(TEXT).keys))
    assert not torch.equal(cache.keys[-1], before.keys[-1])  # it is used: the gists differ from the adapter's without it
    assert again.adapter_identity != GistModel.from_pretrained(base, adapter=adapter, device="cpu").adapter_identity
    (saved / "context_lora.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(ModelLoadError, match="context LoRA"):
        GistModel.from_pretrained(base, adapter=str(saved), device="cpu")


def test_a_run_forked_with_a_context_lora_starts_unchanged_and_resumes_to_the_same_state(tmp_path):
    from safetensors.torch import load_file

    from test_trainer import _model_with, _pool_config
    from trainers.fork import init_from_checkpoint
    from trainers.train import make_optimizer, train

    attention = ("q_proj", "k_proj", "v_proj", "o_proj")
    train(_pool_config(tmp_path / "a", steps=4), model=_model_with(attention), progress=False, stop_after=2)
    src = tmp_path / "a" / "run"
    cfg = _pool_config(tmp_path / "b", steps=5, lora_r=4, lora_alpha=8, init_from=str(src), context_lora_layers=2,
                       context_lora_r=4, context_lora_alpha=8)
    gm = _model_with(attention)
    gm.add_context_lora(2, 4, 8)
    assert init_from_checkpoint(src, cfg, gm, make_optimizer(cfg, gm)) == 2
    assert all(torch.count_nonzero(b) == 0 for b in gm.context_lora.b)
    # the straight run and a run stopped and resumed (a new process each time) end in the same state
    train(cfg, model=_model_with(attention), progress=False)
    sliced = _pool_config(tmp_path / "c", steps=5, lora_r=4, lora_alpha=8, init_from=str(src), context_lora_layers=2,
                          context_lora_r=4, context_lora_alpha=8)
    assert train(sliced, model=_model_with(attention), progress=False, stop_after=1) is None
    train(sliced, model=_model_with(attention), progress=False)
    a = load_file(str(tmp_path / "b" / "run" / "adapter" / "context_lora.safetensors"))
    b = load_file(str(tmp_path / "c" / "run" / "adapter" / "context_lora.safetensors"))
    assert a.keys() == b.keys() and any(torch.count_nonzero(v) for k, v in a.items() if k.endswith(".B"))
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=1e-6)
    # a checkpoint with a context LoRA is not resumed or forked without one
    with pytest.raises(ValueError, match="context_lora"):
        train(_pool_config(tmp_path / "b", steps=6, lora_r=4, lora_alpha=8), model=_model_with(attention), progress=False)


def test_the_context_lora_trains_at_its_own_rate_and_resumes_with_it(tmp_path):
    from test_trainer import _model_with, _pool_config
    from trainers.config import TrainConfig
    from trainers.train import build_model, make_optimizer, train

    attention = ("q_proj", "k_proj", "v_proj", "o_proj")
    cfg = _pool_config(tmp_path, steps=3, lora_r=4, lora_alpha=8, context_lora_layers=2, context_lora_r=4,
                       context_lora_alpha=8, context_lora_lr_scale=10.0)
    gm = build_model(cfg, _model_with(attention))
    optimizer = make_optimizer(cfg, gm)
    assert [g.get("lr_scale", 1.0) for g in optimizer.param_groups] == [1.0, 10.0]
    assert [len(g["params"]) for g in optimizer.param_groups] == [
        sum(p.requires_grad for p in gm.parameters()) - len(list(gm.context_lora.parameters())),
        len(list(gm.context_lora.parameters()))]
    assert train(cfg, model=_model_with(attention), progress=False, stop_after=2) is None
    groups = json.loads((tmp_path / "run" / "checkpoint" / "trainer_state.json").read_text())["param_groups"]
    assert groups[1]["lr_scale"] == 10.0 and groups[1]["lr"] == pytest.approx(10 * groups[0]["lr"])
    train(cfg, model=_model_with(attention), progress=False)  # resumes into the same two groups
    assert (tmp_path / "run" / "adapter" / "context_lora.safetensors").is_file()
    with pytest.raises(ValueError, match="context_lora_lr_scale"):
        TrainConfig(recipe="pool", context_lora_lr_scale=0)


def test_a_fork_may_grow_the_context_lora_to_more_layers_and_keeps_what_the_source_learnt(tmp_path):
    from safetensors.torch import load_file

    from test_trainer import _model_with as _two_layers, _pool_config
    from trainers.fork import init_from_checkpoint
    from trainers.train import make_optimizer, train

    attention = ("q_proj", "k_proj", "v_proj", "o_proj")

    def _model_with(targets):  # three layers: a context LoRA on the top one alone reaches no gist
        return _two_layers(targets, layers=3)

    ctx = dict(lora_r=4, lora_alpha=8, context_lora_r=4, context_lora_alpha=8)
    train(_pool_config(tmp_path / "a", steps=4, context_lora_layers=2, **ctx), model=_model_with(attention),
          progress=False, stop_after=2)
    src = tmp_path / "a" / "run" / "checkpoint"
    saved = load_file(str(src / "context_lora.safetensors"))
    assert saved and all(k.startswith(("layers.1.", "layers.2.")) for k in saved)
    assert any(torch.count_nonzero(v) for k, v in saved.items() if k.endswith(".B"))  # the source learnt something

    cfg = _pool_config(tmp_path / "b", steps=5, init_from=str(src), context_lora_layers=3, **ctx)
    gm = _model_with(attention)
    gm.add_context_lora(3, 4, 8)
    optimizer = make_optimizer(cfg, gm)
    assert init_from_checkpoint(src, cfg, gm, optimizer) == 2
    state = gm.context_lora.state()
    for key, value in saved.items():  # the source's two top layers, exactly
        torch.testing.assert_close(state[key], value, rtol=0, atol=0)
    added = [k for k in state if k.startswith("layers.0.")]
    assert added and all(torch.count_nonzero(state[k]) == 0 for k in added if k.endswith(".B"))
    # the source's AdamW moments sit on the source's modules (those its gradient reached); the added
    # modules have none yet
    params = dict(gm.named_parameters())
    names = gm.context_lora.names
    moments = {names[int(n.rsplit(".", 1)[1])]: bool(optimizer.state.get(params[n]))
               for n in params if n.startswith("context_lora.")}
    assert not any(had for name, had in moments.items() if name.startswith("layers.0."))
    assert any(had for name, had in moments.items() if name.startswith("layers.1."))
    train(cfg, model=_model_with(attention), progress=False)  # and it trains on from there
    grown = load_file(str(tmp_path / "b" / "run" / "adapter" / "context_lora.safetensors"))
    assert any(torch.count_nonzero(v) for k, v in grown.items() if k.startswith("layers.0.") and k.endswith(".B"))
    # a context LoRA may grow, not shrink or change its rank
    for layers, r in ((2, 4), (3, 2)):
        c = _pool_config(tmp_path / f"c{layers}{r}", steps=5, init_from=str(tmp_path / "b" / "run"),
                         **{**ctx, "context_lora_layers": layers, "context_lora_r": r})
        g = _model_with(attention)
        g.add_context_lora(layers, r, 8)
        with pytest.raises(ValueError, match="layers may only grow"):
            init_from_checkpoint(tmp_path / "b" / "run", c, g, make_optimizer(c, g))
