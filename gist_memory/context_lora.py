"""A LoRA that adapts how the top layers of the model *read the context* before it is compressed.

Without it the context pass is the frozen base model (docs/design.md invariant 4): the gists can
only learn to read KV that no parameter can shape. With it, the top ``n`` of the N decoder layers run
the context through a LoRA of their own, so those layers can write what the gists must carry in a
form they can copy. It is separate from the gist adapter (the PEFT LoRA that runs the gist and
question tokens) and starts at zero (B = 0), so an adapter given one starts exactly as it was::

    context pass:   layers 0 .. N-n-1   frozen base             (the trainer's pool keeps this KV)
                    layers N-n .. N-1   base + context LoRA     (the trainer recomputes these from
                                                                 the hidden state at their input)
    gist, question passes: base + gist adapter, as without it

It is applied through forward hooks on the adapted linear layers, active only inside
:meth:`ContextLoRA.active`, so the same modules serve every pass. Saved beside the adapter as
``context_lora.safetensors``, its settings in ``gist_config.json`` under ``context_lora``.
"""

from __future__ import annotations

import contextlib
import math
import re
from pathlib import Path

import torch
from torch import nn

FILE = "context_lora.safetensors"
_LAYER = re.compile(r"(?:^|\.)(layers\.(\d+)\..+)$")


def decoder_layer_count(model) -> int:
    """Decoder layers of a causal LM (or of its text model)."""
    return model.config.get_text_config().num_hidden_layers


def _targets(model, first_layer: int, targets: tuple[str, ...]) -> dict[str, nn.Module]:
    """Adapted linear modules of the layers from ``first_layer`` on, by canonical name (``layers.27.self_attn.q_proj``)."""
    found = {}
    for name, module in model.named_modules():
        match = _LAYER.search(name)
        if match and int(match.group(2)) >= first_layer and name.rsplit(".", 1)[-1] in targets:
            found[match.group(1)] = module
    return found


class ContextLoRA(nn.Module):
    """LoRA factors for the named linear modules of the top ``layers`` decoder layers of ``model``.

    Args:
        model: the causal LM (PEFT-wrapped or not) whose modules are hooked.
        layers: how many of the top decoder layers read the context through it (>= 1).
        r, alpha: rank and scale (alpha / r), as PEFT's LoRA.
        targets: module names to adapt (q_proj, k_proj, ...).
        seed: seeds the A factors (B starts at zero).
    """

    def __init__(self, model, layers: int, r: int = 16, alpha: int = 32,
                 targets: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj"), seed: int = 0):
        super().__init__()
        total = decoder_layer_count(model)
        if not (isinstance(layers, int) and 1 <= layers <= total):
            raise ValueError(f"context LoRA layers must be an integer in [1, {total}], got {layers!r}")
        if not (isinstance(r, int) and r >= 1 and alpha > 0):
            raise ValueError(f"context LoRA needs r >= 1 and alpha > 0, got r={r!r}, alpha={alpha!r}")
        self.layers, self.r, self.alpha, self.targets = layers, r, alpha, tuple(targets)
        self.first_layer = total - layers
        modules = _targets(model, self.first_layer, self.targets)
        if not modules:
            raise ValueError(f"context LoRA: the model has no modules named {list(self.targets)} in layers "
                             f"{self.first_layer}..{total - 1}")
        self.names = sorted(modules, key=lambda n: (int(n.split(".")[1]), n))
        gen = torch.Generator().manual_seed(seed)
        weight = model.get_input_embeddings().weight
        self.a, self.b = nn.ParameterList(), nn.ParameterList()
        for name in self.names:
            m = modules[name]
            a = torch.empty(r, m.in_features)
            bound = 1 / math.sqrt(m.in_features)  # PEFT's default A init: kaiming-uniform with a = sqrt(5)
            a.uniform_(-bound, bound, generator=gen)
            self.a.append(nn.Parameter(a.to(weight.device, weight.dtype)))
            self.b.append(nn.Parameter(torch.zeros(m.out_features, r, device=weight.device, dtype=weight.dtype)))
        self.scale = alpha / r
        self._on = False
        self._hooks = [modules[name].register_forward_hook(self._hook(i)) for i, name in enumerate(self.names)]

    def _hook(self, i: int):
        def add(module, args, output):
            if not self._on:
                return output
            x = args[0]
            delta = (x.to(self.a[i].dtype) @ self.a[i].T) @ self.b[i].T
            return output + (self.scale * delta).to(output.dtype)
        return add

    @contextlib.contextmanager
    def active(self):
        """Inside: the hooked modules add the context LoRA (the context pass)."""
        before, self._on = self._on, True
        try:
            yield
        finally:
            self._on = before

    def settings(self) -> dict:
        return {"layers": self.layers, "r": self.r, "alpha": self.alpha, "targets": list(self.targets)}

    def state(self) -> dict[str, torch.Tensor]:
        out = {}
        for name, a, b in zip(self.names, self.a, self.b):
            out[f"{name}.A"], out[f"{name}.B"] = a.detach().cpu().contiguous(), b.detach().cpu().contiguous()
        return out

    def save(self, directory: Path) -> None:
        from safetensors.torch import save_file

        save_file(self.state(), str(Path(directory) / FILE), metadata={"format": "gist-context-lora"})

    def layer_of(self, i: int) -> int:
        """The decoder layer of module ``i`` (the order of ``names``, ``a`` and ``b``)."""
        return int(self.names[i].split(".")[1])

    def load(self, directory: Path, partial: bool = False) -> None:
        """Load the factors saved in ``directory``; every module must be there, with its shape.

        With ``partial``, the saved modules may be a subset (a context LoRA grown to more layers
        than the one saved: the others keep their fresh factors, B = 0).
        """
        from safetensors.torch import load_file

        tensors = load_file(str(Path(directory) / FILE))
        expected = self.state()
        missing, extra = sorted(set(expected) - set(tensors)), sorted(set(tensors) - set(expected))
        if extra or (missing and not partial):
            raise ValueError(f"{FILE} does not match the settings (missing {missing[:2]}, unexpected {extra[:2]})")
        with torch.no_grad():
            for name, a, b in zip(self.names, self.a, self.b):
                if f"{name}.A" not in tensors:  # (partial: a module the saved LoRA did not have)
                    continue
                for key, p in ((f"{name}.A", a), (f"{name}.B", b)):
                    if tensors[key].shape != p.shape:
                        raise ValueError(f"{FILE}: {key} has shape {tuple(tensors[key].shape)}, expected {tuple(p.shape)}")
                    p.copy_(tensors[key].to(p.dtype))
