"""Training with several processes (accelerate over torch.distributed, gloo on CPU): every rank
draws its own data, gradients are averaged, and exactly one process writes the run directory."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

SCRIPT = textwrap.dedent("""
    import json, os, sys
    from pathlib import Path
    sys.path.insert(0, {tests!r})
    import torch
    import trainers.pool as P
    import trainers.train as T
    from test_trainer import _config, _fresh_model, _pool_config

    out = Path({out!r})
    rank = int(os.environ["RANK"])
    seen = []
    if {recipe!r} == "pool":  # the chunks a step draws from the rank's pool
        real = P.draw_rows  # (called by pool.draw_step)
        def spy(rng, drawn, *args, **kw):
            seen.append([c.number for c in drawn] + [c.ids[:4] for c in drawn])
            return real(rng, drawn, *args, **kw)
        P.draw_rows = spy
        cfg = _pool_config(out, steps=3)
    else:  # the fresh samples a step builds
        real = T.step_samples
        def spy(*args, **kw):
            batch = real(*args, **kw)
            seen.append([(s.context[:80], s.answer) for s in batch])
            return batch
        T.step_samples = spy
        cfg = _config(out, steps=3)
    gm = _fresh_model()
    T.train(cfg, model=gm, progress=False)
    weights = [p.detach().double().sum().item() for p in gm.parameters() if p.requires_grad]
    (out / f"seen-{{rank}}.json").write_text(json.dumps({{"seen": seen, "weights": weights}}))
""")


@pytest.mark.parametrize("recipe", ["pool", "episode"])
def test_two_processes_draw_different_data_and_one_writes(tmp_path, recipe):
    out = tmp_path / "ddp"
    out.mkdir()
    script = tmp_path / "run.py"
    script.write_text(SCRIPT.format(tests=str(Path(__file__).parent), out=str(out), recipe=recipe))
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                           "--master_port", "29517", str(script)], capture_output=True, text=True, timeout=600,
                          cwd=Path(__file__).parent.parent, env={**__import__("os").environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    ranks = [json.loads((out / f"seen-{r}.json").read_text()) for r in (0, 1)]
    seen = [r["seen"] for r in ranks]
    assert len(seen[0]) == len(seen[1]) == 3
    assert all(a != b for a, b in zip(*seen)), f"both ranks drew the same {recipe} data"
    # gradients are averaged across ranks, so both hold the same weights after different data
    assert ranks[0]["weights"] == ranks[1]["weights"]
    rows = [json.loads(line) for line in (out / "run" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [0, 1, 2]  # one writer: each step logged once
    history = (out / "run" / "config-history.jsonl").read_text().splitlines()
    assert len(history) == 1
    assert json.loads((out / "run" / "run.json").read_text())["processes"] == 2
    assert (out / "run" / "adapter" / "gist_embeddings.safetensors").is_file()
