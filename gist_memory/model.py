"""GistModel: a causal LM, k learned gist-token embeddings and an optional LoRA adapter.

Only two things learn (docs/design.md invariant 4): the k gist embedding rows, kept here as one
(k, hidden) parameter fed through ``inputs_embeds`` so the vocabulary and lm_head stay untouched,
and the LoRA adapter. Compression runs the context through the frozen base model (adapter off)
and the gist tokens through the adapter, the recipe measured to learn (docs/design.md).

An adapter directory is PEFT's layout plus two files of ours::

    adapter_config.json, adapter_model.safetensors   # PEFT LoRA (absent for a gist-rows-only adapter)
    gist_embeddings.safetensors                      # (k, hidden) gist rows
    gist_config.json                                 # k, chunk length, base model, format version
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from pathlib import Path

import torch
from torch import nn

from .config import ADAPTER_FORMAT_VERSION, FORMAT_VERSION, GistConfig
from .context_lora import FILE as CONTEXT_LORA_FILE
from .errors import InputError, ModelLoadError
from .loading import (is_legacy_identity, load_base, model_directory, model_fingerprint, resolve_device,
                      resolve_dtype, weights_digest)

#: The adapter shipped in the package for the embedded default model.
DEFAULT_ADAPTER_DIR = Path(__file__).parent / "adapters" / "default"


def _read_gist_config(adapter_dir: Path) -> dict:
    """An adapter's ``gist_config.json``, refused with a one-line error when damaged or too new."""
    path = adapter_dir / "gist_config.json"
    try:
        info = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelLoadError(f"{path} is not valid JSON ({exc}); copy the adapter directory again") from None
    if not isinstance(info, dict) or not {"num_gist_tokens", "chunk_tokens", "base_model"} <= set(info):
        raise ModelLoadError(f"{path} is not a gist adapter config (it needs num_gist_tokens, chunk_tokens and "
                             "base_model); pass a directory written by GistModel.save_adapter or the trainer")
    version = info.get("format_version", FORMAT_VERSION)
    if not isinstance(version, int) or version > ADAPTER_FORMAT_VERSION:
        raise ModelLoadError(f"{path} has adapter format version {version!r}; this gist-memory reads up to "
                             f"{ADAPTER_FORMAT_VERSION}. Upgrade gist-memory to load it")
    try:
        GistConfig.from_dict(info)  # k, chunk length and prompt format in range
        if not isinstance(info["base_model"], str):
            raise ValueError(f"base_model must be a model identity (a str), got {info['base_model']!r}")
    except ValueError as exc:
        raise ModelLoadError(f"{path} is damaged: {exc}; copy the adapter directory again") from None
    return info


def _with_lora(model, adapter_dir: Path):
    """``model`` wrapped in the adapter's PEFT LoRA, from safetensors only: PEFT would fall back to a
    pickled adapter_model.bin, and a damaged file fails deep inside it with a message that names neither."""
    from peft import PeftModel
    from safetensors import SafetensorError

    if not (adapter_dir / "adapter_model.safetensors").is_file():
        raise ModelLoadError(f"adapter {adapter_dir} has adapter_config.json but no adapter_model.safetensors (a "
                             "pickled adapter_model.bin is never read); copy the whole adapter directory again")
    try:
        model = PeftModel.from_pretrained(model, str(adapter_dir), is_trainable=False)
    except (OSError, ValueError, KeyError, SafetensorError) as exc:  # JSONDecodeError is a ValueError
        raise ModelLoadError(f"adapter {adapter_dir}: its LoRA files are damaged ({type(exc).__name__}: "
                             f"{' '.join(str(exc).split())}); copy the whole adapter directory again") from None
    return model.eval()


def _adapter_identity(adapter_dir: Path) -> str:
    digest = hashlib.sha256()
    for name in ("gist_config.json", "gist_embeddings.safetensors", "adapter_model.safetensors", CONTEXT_LORA_FILE):
        if (adapter_dir / name).is_file():
            digest.update((adapter_dir / name).read_bytes())
    return f"{adapter_dir.name}#{digest.hexdigest()[:16]}"


class GistModel(nn.Module):
    """A base causal LM that can compress text into gist KV caches and answer from them.

    Build it with :meth:`from_pretrained`; then ``cache = model.compress(text)`` and
    ``model.generate("question?", [cache]).text``.
    """

    def __init__(self, model, tokenizer, gist: GistConfig, base_identity: str, adapter_identity: str = "none",
                 gist_rows: torch.Tensor | None = None):
        super().__init__()
        self.model = model
        self.tokenizer = tokenizer
        self.gist = gist
        self.base_identity = base_identity
        self.adapter_identity = adapter_identity
        emb = model.get_input_embeddings().weight
        if gist_rows is None:
            gist_rows = self.initial_gist_rows(emb, gist.num_gist_tokens)
        if gist_rows.shape != (gist.num_gist_tokens, emb.shape[1]):
            raise ModelLoadError(f"gist rows have shape {tuple(gist_rows.shape)}, expected "
                                 f"({gist.num_gist_tokens}, {emb.shape[1]}) for this base model")
        self.gist_embeddings = nn.Parameter(gist_rows.to(emb.device, emb.dtype).clone(), requires_grad=False)
        self.context_lora = None  #: a ContextLoRA when the top layers read the context through their own LoRA

    @staticmethod
    def initial_gist_rows(embedding: torch.Tensor, k: int, seed: int = 0) -> torch.Tensor:
        """Untrained gist rows: k distinct rows of the vocabulary, chosen by a seeded draw.

        Distinct real embeddings break the symmetry between gists from the start; rows that all
        begin near one vector (e.g. the mean embedding) stay near-identical in training and
        carry about one token's worth of information between them.
        """
        gen = torch.Generator().manual_seed(seed)
        emb = embedding.detach().float().cpu()
        return emb[torch.randperm(emb.shape[0], generator=gen)[:k]].clone()

    # ------------------------------------------------------------------ loading and saving
    @classmethod
    def from_pretrained(cls, base: str = "default", adapter: str | None = "auto", device: str = "auto",
                        dtype: str | torch.dtype = "auto", load_in_4bit: bool = False,
                        num_gist_tokens: int | None = None, chunk_tokens: int | None = None) -> "GistModel":
        """Load a base model and, optionally, a trained gist adapter.

        Args:
            base: 'default' (embedded SmolLM2-135M-Instruct, offline), a Hugging Face id in the local
                cache, or a local model directory.
            adapter: 'auto' (the shipped adapter when base is 'default', else none), 'default',
                None / 'none', or an adapter directory.
            device: 'auto', 'cpu', 'cuda', 'cuda:1' ...
            dtype: 'auto' (fp32 on CPU, bf16 on CUDA), 'float32', 'bfloat16', 'float16'.
            load_in_4bit: quantise the base model to NF4 with bitsandbytes (QLoRA-style).
            num_gist_tokens, chunk_tokens: gist configuration when no adapter fixes it.
        """
        overrides = {k: v for k, v in (("num_gist_tokens", num_gist_tokens), ("chunk_tokens", chunk_tokens))
                     if v is not None}
        try:  # a bad value fails here, before a model is loaded for nothing
            requested = GistConfig(**overrides)
        except ValueError as exc:
            raise InputError(str(exc)) from None
        dev = resolve_device(device)
        dt = resolve_dtype(dtype, dev)
        adapter_dir = cls._resolve_adapter(base, adapter)
        model, tokenizer, label = load_base(base, dev, dt, load_in_4bit)
        where = model_directory(base)
        base_identity = model_fingerprint(model, label, weights_digest(where) if where is not None else None)
        if adapter_dir is None:
            return cls(model, tokenizer, requested, base_identity)
        return cls._with_adapter(model, tokenizer, base_identity, adapter_dir, overrides)

    @staticmethod
    def _resolve_adapter(base: str, adapter: str | None) -> Path | None:
        if adapter in (None, "none"):
            return None
        if adapter == "auto":
            has_default = (DEFAULT_ADAPTER_DIR / "gist_config.json").is_file()
            return DEFAULT_ADAPTER_DIR if base == "default" and has_default else None
        path = DEFAULT_ADAPTER_DIR if adapter == "default" else Path(adapter)
        if not (path / "gist_config.json").is_file():
            raise ModelLoadError(f"adapter {adapter!r}: {path} has no gist_config.json; pass a directory written "
                                 "by GistModel.save_adapter or the trainer, or adapter=None")
        return path

    @classmethod
    def _with_adapter(cls, model, tokenizer, base_identity: str, adapter_dir: Path, overrides: dict) -> "GistModel":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        info = _read_gist_config(adapter_dir)
        gist = GistConfig.from_dict(info)
        for key, value in overrides.items():
            if getattr(gist, key) != value:
                raise ModelLoadError(f"adapter {adapter_dir} was trained with {key}={getattr(gist, key)}; "
                                     f"you asked for {key}={value}. Drop the argument or train another adapter")
        trained_on = info.get("base_model", "")
        if trained_on.split("#")[-1] != base_identity.split("#")[-1]:
            hint = (" (its identity predates weight-bound identities: if you know it was trained on this base, "
                    "set base_model in its gist_config.json to the loaded base's identity)"
                    if is_legacy_identity(trained_on) else "")
            raise ModelLoadError(f"adapter {adapter_dir} was trained on base model {trained_on!r}, "
                                 f"but the loaded base model is {base_identity!r}{hint}")
        if (adapter_dir / "adapter_config.json").is_file():
            model = _with_lora(model, adapter_dir)
        try:
            rows = load_file(str(adapter_dir / "gist_embeddings.safetensors"))["gist_embeddings"]
        except (OSError, KeyError, ValueError, SafetensorError) as exc:  # missing file or tensor, not safetensors
            raise ModelLoadError(f"adapter {adapter_dir}: gist_embeddings.safetensors is missing or damaged "
                                 f"({type(exc).__name__}: {exc}); copy the whole adapter directory again") from None
        gm = cls(model, tokenizer, gist, base_identity, _adapter_identity(adapter_dir), rows)
        if "context_lora" in info:
            gm._load_context_lora(adapter_dir, info["context_lora"])
        return gm

    def _load_context_lora(self, adapter_dir: Path, settings) -> None:
        from safetensors import SafetensorError

        try:
            self.add_context_lora(**settings, trainable=False)
            self.context_lora.load(adapter_dir)
        except (TypeError, ValueError, OSError, SafetensorError) as exc:
            raise ModelLoadError(f"adapter {adapter_dir}: its context LoRA ({CONTEXT_LORA_FILE} and gist_config.json's "
                                 f"context_lora) is damaged or does not fit this base ({exc}); copy the adapter "
                                 "directory again") from None

    def add_lora(self, r: int = 16, alpha: int = 32, dropout: float = 0.0,
                 target_modules: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj")) -> None:
        """Wrap the base model in a fresh trainable LoRA adapter and make the gist rows trainable."""
        from peft import LoraConfig, get_peft_model

        if hasattr(self.model, "peft_config"):
            raise InputError("this GistModel already has an adapter; load the base with adapter=None to train anew")
        cfg = LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=list(target_modules),
                         bias="none", task_type="CAUSAL_LM")
        self.model = get_peft_model(self.model, cfg)
        self.gist_embeddings.requires_grad_(True)
        self.adapter_identity = "training"

    def add_context_lora(self, layers: int, r: int = 16, alpha: int = 32,
                         targets: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj"),
                         trainable: bool = True) -> None:
        """Give the top ``layers`` decoder layers a LoRA of their own for the context pass, starting
        at zero (:mod:`gist_memory.context_lora`): compression then runs those layers with it."""
        from .context_lora import ContextLoRA

        if self.context_lora is not None:
            raise InputError("this GistModel already has a context LoRA")
        self.context_lora = ContextLoRA(self.model, layers, r, alpha, tuple(targets)).requires_grad_(trainable)

    def save_adapter(self, directory: str | Path) -> Path:
        """Write the adapter (PEFT LoRA files, gist rows, gist config) to ``directory``."""
        from safetensors.torch import save_file

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        if hasattr(self.model, "peft_config"):
            self.model.save_pretrained(str(directory))
        rows = self.gist_embeddings.detach().float().cpu().contiguous()
        save_file({"gist_embeddings": rows}, str(directory / "gist_embeddings.safetensors"),
                  metadata={"format": "gist-adapter", "format_version": str(FORMAT_VERSION)})
        info = dict(self.gist.to_dict(), base_model=self.base_identity, format_version=FORMAT_VERSION)
        if self.context_lora is not None:
            self.context_lora.save(directory)
            info.update(context_lora=self.context_lora.settings(), format_version=2)
        if info["prompt_format"] == "chat":  # the format every release reads: written as before
            del info["prompt_format"]
        else:  # older releases would ask in the wrong format: they refuse version 3
            info["format_version"] = ADAPTER_FORMAT_VERSION
        (directory / "gist_config.json").write_text(json.dumps(info, indent=2))
        return directory

    def trainable_parameters(self) -> dict[str, int]:
        """Trainable counts: gist rows, LoRA, and their total (docs/design.md invariant 4)."""
        lora = sum(p.numel() for p in self.model.parameters() if p.requires_grad)
        rows = self.gist_embeddings.numel() if self.gist_embeddings.requires_grad else 0
        context = sum(p.numel() for p in self.context_lora.parameters() if p.requires_grad) if self.context_lora else 0
        return {"gist_rows": rows, "lora": lora, "context_lora": context, "total": rows + lora + context}

    # ------------------------------------------------------------------ helpers used by compress/generate
    @property
    def device(self) -> torch.device:
        return self.gist_embeddings.device

    @property
    def dtype(self) -> torch.dtype:
        return self.model.get_input_embeddings().weight.dtype

    @property
    def cache_identity(self) -> dict:
        """What a cache made by this model records, and what loading a cache checks."""
        return {"base_model": self.base_identity, "adapter": self.adapter_identity,
                "num_gist_tokens": self.gist.num_gist_tokens, "chunk_tokens": self.gist.chunk_tokens,
                "dtype": str(self.dtype).replace("torch.", ""), "format_version": FORMAT_VERSION}

    def base_mode(self):
        """Context manager: the frozen base model (LoRA disabled) inside, the adapter outside."""
        if hasattr(self.model, "disable_adapter"):
            return self.model.disable_adapter()
        return contextlib.nullcontext()

    @contextlib.contextmanager
    def context_mode(self):
        """Context manager for the context pass: the frozen base, plus the context LoRA if there is one."""
        with self.base_mode(), (self.context_lora.active() if self.context_lora is not None
                                else contextlib.nullcontext()):
            yield

    def embed(self, input_ids: torch.Tensor) -> torch.Tensor:
        """(B, T) ids -> (B, T, hidden) input embeddings."""
        return self.model.get_input_embeddings()(input_ids)

    def gist_embeds(self, batch: int) -> torch.Tensor:
        """(batch, k, hidden) gist embeddings in the model's dtype."""
        return self.gist_embeddings.to(self.dtype)[None].expand(batch, -1, -1)

    def kv_shape(self) -> tuple[int, int, int]:
        """(layers, KV heads, head size) of the model's KV cache: what every GistCache of it holds."""
        cfg = self.model.config.get_text_config()
        head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
        kv_heads = getattr(cfg, "num_key_value_heads", None) or cfg.num_attention_heads
        return cfg.num_hidden_layers, kv_heads, head_dim

    def kv_bytes_per_token(self) -> int:
        """Bytes of keys plus values that one token costs in the KV cache, over all layers."""
        layers, kv_heads, head_dim = self.kv_shape()
        return 2 * layers * kv_heads * head_dim * torch.finfo(self.dtype).bits // 8

    # ------------------------------------------------------------------ the public engine
    def compress(self, text: str, batch_size: int = 8, progress: bool = False):
        """Compress a text into one GistCache (its chunks' gist caches, concatenated)."""
        from .compress import compress_text

        return compress_text(self, text, batch_size=batch_size, progress=progress)

    def generate(self, question: str, caches=None, max_new_tokens: int = 64, stream: bool = False, **kwargs):
        """Answer ``question`` from gist caches only; see :func:`gist_memory.generate.generate`."""
        from .generate import generate

        return generate(self, question, caches, max_new_tokens=max_new_tokens, stream=stream, **kwargs)
