"""Train/inference parity (docs/design.md invariant 2).

The post-gist logits of the two-pass masked training forward (``recipe.episode_forward``) must
equal those of compressing each chunk on its own, dropping the context KV, concatenating the gist
caches and running the post tokens on top (``compress_chunks`` + ``forward_on_cache``). One test
that catches mask, position and cache-slicing bugs at once.
"""

import random

import pytest
import torch

from gist_memory.cache import GistCache
from gist_memory.compress import compress_chunks
from gist_memory.generate import answer_ids, forward_on_cache, prompt_ids
from gist_memory.mask import CONTEXT, POST
from trainers.recipe import Episode, collate, episode_forward
from tiny import random_lora, tiny_gist_model

TOL = 1e-4


def episodes_for(gm, chunk_lengths_per_row, seed=0):
    """Episodes with random context bytes, a templated question and an answer."""
    rng = random.Random(seed)
    vocab = 256  # byte tokens of the tiny tokenizer (the real model: any ordinary ids)
    episodes = []
    for i, lengths in enumerate(chunk_lengths_per_row):
        chunks = [[rng.randrange(vocab) for _ in range(n)] for n in lengths]
        prompt = prompt_ids(gm.tokenizer, f"question {i}: what was said?" + " really" * i)
        episodes.append(Episode(chunks, prompt, answer_ids(gm.tokenizer, f"answer {i}")))
    return episodes


def parity_error(gm, episodes, allowed=None, batch_size=3) -> float:
    """Max |logit difference| between the training path and compressed inference, over all rows."""
    batch = collate(episodes, gm.gist.num_gist_tokens, gm.tokenizer.pad_token_id)
    with torch.no_grad():
        train = episode_forward(gm, batch, allowed=allowed)  # (B, P, vocab)
    worst = 0.0
    for b, ep in enumerate(episodes):
        cache = GistCache.concat(compress_chunks(gm, ep.chunks, batch_size=batch_size))
        logits, _, _ = forward_on_cache(gm, cache, ep.post)
        worst = max(worst, (train[b, :len(ep.post)] - logits[0]).abs().max().item())
    return worst


# rows with different numbers and lengths of chunks, padded into one batch
ROWS = [[20], [48, 7, 15], [3, 48]]


# the families the issue names: Llama, Qwen, Mistral, Gemma (gemma3_text: sliding-window layers)
@pytest.mark.parametrize("arch", ["llama", "qwen2", "mistral", "gemma", "gemma3_text"])
def test_parity_tiny_padded_multichunk_batch(arch):
    gm = tiny_gist_model(arch=arch)
    assert parity_error(gm, episodes_for(gm, ROWS)) <= TOL


def test_parity_tiny_single_chunk():
    gm = tiny_gist_model(k=2)
    assert parity_error(gm, episodes_for(gm, [[30]])) <= TOL


def test_parity_without_lora():
    gm = tiny_gist_model(lora=False)
    assert parity_error(gm, episodes_for(gm, ROWS, seed=1)) <= TOL


def test_parity_bites_when_a_post_token_sees_one_context_token():
    gm = tiny_gist_model()
    episodes = episodes_for(gm, ROWS)
    batch = collate(episodes, gm.gist.num_gist_tokens, gm.tokenizer.pad_token_id)
    leaky = batch.allowed.clone()
    b = 1
    q = int((batch.kinds[b] == POST).nonzero()[-1])   # the row's last post token ...
    c = int((batch.kinds[b] == CONTEXT).nonzero()[0])  # ... may now see the first context token
    assert not leaky[b, q, c]
    leaky[b, q, c] = True
    assert parity_error(gm, episodes) <= TOL
    assert parity_error(gm, episodes, allowed=leaky) > TOL


# On the real model, float64 shows the two paths compute the same function (measured 6e-14);
# float32 differs by rounding that 30 layers and a random LoRA amplify: measured 7e-5 to 3e-3 over
# LoRA seeds, against logits of ~45, while letting one answer token see one context token moves
# the logits by ~6. So float64 carries the sharp tolerance and float32 a loose one.
@pytest.mark.slow
@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-6), (torch.float32, 5e-3)], ids=["float64", "float32"])
def test_parity_default_model(dtype, tol):
    from gist_memory import GistModel

    torch.manual_seed(0)  # the LoRA A matrices are drawn from the global generator
    gm = GistModel.from_pretrained("default", adapter=None, device="cpu", dtype=dtype, num_gist_tokens=4,
                                   chunk_tokens=64)
    random_lora(gm)  # so a base/adapter mix-up in either path changes the logits
    text = ("The lighthouse keeper wrote the passkey 48213 in the logbook before the storm. "
            "Ships passed the harbour at dawn, and the keeper counted them one by one. ") * 3
    ids = gm.tokenizer(text, add_special_tokens=False)["input_ids"]
    chunks_rows = [[ids[:64]], [ids[:40], ids[40:100]]]
    episodes = [Episode(chunks, prompt_ids(gm.tokenizer, "What is the passkey?"), answer_ids(gm.tokenizer, "48213"))
                for chunks in chunks_rows]
    assert parity_error(gm, episodes) <= tol
