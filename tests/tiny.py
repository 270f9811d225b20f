"""Tiny randomly initialised models and a byte-level tokenizer, built in-process (no downloads)."""

from __future__ import annotations

import torch

SPECIALS = ["<|pad|>", "<|end|>", "<|user|>", "<|assistant|>"]
CHAT_TEMPLATE = ("{% for m in messages %}<|user|>{{ m['content'] }}<|end|>{% endfor %}"
                 "{% if add_generation_prompt %}<|assistant|>{% endif %}")


def tiny_tokenizer():
    """Byte-level tokenizer: 256 byte tokens plus chat specials; any text round-trips."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    tok = Tokenizer(models.BPE(vocab={ch: i for i, ch in enumerate(alphabet)}, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<|pad|>", eos_token="<|end|>",
                                   additional_special_tokens=SPECIALS[2:])
    fast.chat_template = CHAT_TEMPLATE
    return fast


def tiny_llama(vocab_size: int, seed: int = 0, layers: int = 2, arch: str = "llama"):
    """A 2-layer model with grouped-query attention, fp32, eval mode."""
    from transformers import AutoConfig, AutoModelForCausalLM

    torch.manual_seed(seed)
    cfg = AutoConfig.for_model(arch, vocab_size=vocab_size, hidden_size=64, intermediate_size=128,
                               num_hidden_layers=layers, num_attention_heads=4, num_key_value_heads=2,
                               max_position_embeddings=2048, pad_token_id=0, eos_token_id=1,
                               tie_word_embeddings=True)
    cfg._attn_implementation = "sdpa"
    return AutoModelForCausalLM.from_config(cfg).eval()


def tiny_gist_model(k: int = 4, chunk_tokens: int = 48, lora: bool = True, seed: int = 0, arch: str = "llama",
                    layers: int = 2):
    """A GistModel on a tiny random base; with ``lora`` its LoRA weights are random, so the
    adapter changes the output and a base/adapter mix-up shows in the parity test."""
    from gist_memory.config import GistConfig
    from gist_memory.loading import model_fingerprint
    from gist_memory.model import GistModel

    tok = tiny_tokenizer()
    base = tiny_llama(len(tok), seed=seed, layers=layers, arch=arch)
    gm = GistModel(base, tok, GistConfig(num_gist_tokens=k, chunk_tokens=chunk_tokens),
                   model_fingerprint(base, f"tiny-{arch}-{seed}"))
    if lora:
        random_lora(gm, seed)
    return gm


def random_lora(gm, seed: int = 0) -> None:
    """Add a LoRA adapter with random (non-zero) B matrices, so it changes the model's output."""
    gm.add_lora(r=4, alpha=8)
    gen = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for name, p in gm.model.named_parameters():
            if "lora_B" in name:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.2)
    gm.eval()


def save_tiny(directory, k: int = 4, chunk_tokens: int = 48, seed: int = 0, adapter: bool = True):
    """Write a tiny base model (``directory/base``) and, with ``adapter``, a random gist adapter
    for it (``directory/adapter``), as a user's model and trained adapter would be on disk.

    Returns:
        (base_dir, adapter_dir or None) as strings.
    """
    from pathlib import Path

    from gist_memory.model import GistModel

    base_dir, adapter_dir = Path(directory) / "base", Path(directory) / "adapter"
    gm = tiny_gist_model(k=k, chunk_tokens=chunk_tokens, lora=False, seed=seed)
    gm.model.save_pretrained(base_dir)
    gm.tokenizer.save_pretrained(base_dir)
    if not adapter:
        return str(base_dir), None
    loaded = GistModel.from_pretrained(str(base_dir), adapter=None, device="cpu", num_gist_tokens=k,
                                       chunk_tokens=chunk_tokens)
    random_lora(loaded, seed)
    with torch.no_grad():  # trained gist rows differ from the untrained initial ones
        noise = torch.randn(loaded.gist_embeddings.shape, generator=torch.Generator().manual_seed(seed))
        loaded.gist_embeddings.add_(noise)
    loaded.save_adapter(adapter_dir)
    return str(base_dir), str(adapter_dir)


class HashEmbedder:
    """A deterministic bag-of-words embedder (hashed words, unit length): lexical overlap decides
    the nearest chunk, so retrieval tests need no sentence-transformers model."""

    identity = "tests.tiny.HashEmbedder/64"

    def __call__(self, texts: list[str]) -> list[list[float]]:
        import hashlib
        import re

        out = []
        for text in texts:
            v = [0.0] * 64
            for word in re.findall(r"[a-z0-9]+", text.lower()):
                h = int(hashlib.md5(word.encode()).hexdigest(), 16)
                v[h % 64] += 1.0 if (h >> 8) % 2 else -1.0
            norm = sum(x * x for x in v) ** 0.5 or 1.0
            out.append([x / norm for x in v])
        return out


def tiny_documents(n: int, sentences: int = 12, seed: int = 0) -> list[dict]:
    """``n`` deterministic documents of made-up prose, each about its own topic word, with metadata."""
    import random

    rng = random.Random(seed)
    words = ("river stone lamp window garden harbor ledger engine orchard bridge candle market "
             "meadow signal archive copper valley winter".split())
    docs = []
    for i in range(n):
        topic = f"topic{i}"
        body = " ".join(f"The {topic} {rng.choice(words)} holds {rng.choice(words)} near the {rng.choice(words)}."
                        for _ in range(sentences))
        docs.append({"text": body, "metadata": {"id": f"doc{i}", "group": "even" if i % 2 == 0 else "odd", "n": i}})
    return docs
