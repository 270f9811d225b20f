"""Is a missed value in the gists at all? A teacher-forced read-out of the validation answers.

``trainers.misses`` sorts greedy answers by how they miss (``40-11-32 -> 40``, ``97.4 MHz ->
17:15``). Two causes fit those misses and call for different changes:

- **not held**: the gists keep only the start of a value, and the rest comes from the answer
  prior (a time's ``:15`` after the right first digits);
- **held, lost in decoding**: the gists hold the value, but one wrong token under greedy decoding
  (``:`` for ``-``) sends the rest down the prior's path.

Here every answer token is scored with the right tokens before it (teacher forcing), from the
sample's own gists and, as a control, from the gists of the next sample of the same task (which
hold another value of the same kind). Where the two agree, the gists carry nothing of that token;
where own is far above the control and its argmax is right, the value is there to read.

    python -m trainers.readout --adapter runs/pool-k8g/checkpoint --recipe trainers/configs/pool-k8g.yaml
"""

from __future__ import annotations

import math

import torch

from .validation import ValSample, emit, forced_logp, sample_caches

TOKEN_CLASSES = ("digit", "letter", "separator", "end")


def token_class(piece: str, is_end: bool) -> str:
    """'end' for the end-of-turn token, 'digit' when the piece holds a digit, 'letter' a letter, else 'separator'."""
    if is_end:
        return "end"
    if any(ch.isdigit() for ch in piece):
        return "digit"
    return "letter" if any(ch.isalpha() for ch in piece) else "separator"


@torch.no_grad()
def read_answer(gm, caches, question: str, answer: str) -> list[dict]:
    """Per answer token (its end-of-turn token last): its text and class, the probability the adapter
    gives it after the right tokens before it, whether it is the adapter's first choice there, and
    the first choice's text."""
    target, logp = forced_logp(gm, caches, question, answer)
    want = torch.as_tensor(target, device=logp.device)
    p = logp.gather(-1, want[:, None]).squeeze(-1).exp()
    chosen = logp.argmax(-1)
    end = gm.tokenizer.eos_token_id
    out = []
    for i, t in enumerate(target):
        piece, is_end = gm.tokenizer.decode([t]), t == end and i == len(target) - 1
        out.append({"piece": piece, "class": token_class(piece, is_end), "p": round(p[i].item(), 4),
                    "top": int(chosen[i]) == t, "chosen": gm.tokenizer.decode([int(chosen[i])])})
    return out


def _mean(values: list[float]) -> float | None:
    return round(sum(values) / len(values), 3) if values else None


def _nll(answer: list[dict]) -> float:
    # p is recorded to 4 decimals, so 1e-4 is the floor of what a record can say
    return sum(-math.log(max(t["p"], 1e-4)) for t in answer) / len(answer)


def summarise(own: list[list[dict]], other: list[list[dict]]) -> dict:
    """A task's read-out: answers right token by token (own gists, control); the mean loss per
    answer token (nats) and probability of the whole answer, which move while exact match stands
    still; and per token class and position (1st, 2nd, 3rd, 4th+ value token) the mean probability
    and first-choice share."""
    out = {"n": len(own),
           "forced exact": _mean([float(all(t["top"] for t in a)) for a in own]),
           "forced exact, control": _mean([float(all(t["top"] for t in a)) for a in other]),
           "nll": _mean([_nll(a) for a in own]), "nll, control": _mean([_nll(a) for a in other]),
           "P(answer)": _mean([math.prod(t["p"] for t in a) for a in own])}
    for name, pick in [(c, lambda t, i, c=c: t["class"] == c) for c in TOKEN_CLASSES] + [
            (f"position {j + 1}" if j < 3 else "position 4+",
             lambda t, i, j=j: t["class"] != "end" and (i == j if j < 3 else i >= 3)) for j in range(4)]:
        mine = [t for a in own for i, t in enumerate(a) if pick(t, i)]
        ctrl = [t for a in other for i, t in enumerate(a) if pick(t, i)]
        out[name] = {"tokens": len(mine), "p": _mean([t["p"] for t in mine]),
                     "p control": _mean([t["p"] for t in ctrl]),
                     "first choice": _mean([float(t["top"]) for t in mine]),
                     "first choice control": _mean([float(t["top"]) for t in ctrl])}
    return out


def read_out(gm, samples: list[ValSample], records: list[dict] | None = None) -> dict[str, dict]:
    """:func:`summarise` by task; the control for sample ``i`` is the gists of the next sample of its
    task (the last one's: the first). With ``records``, every sample's per-token read-out is appended."""
    was_training = gm.training
    gm.eval()
    caches = sample_caches(gm, samples)
    by_task: dict[str, list[int]] = {}
    for i, s in enumerate(samples):
        by_task.setdefault(s.task, []).append(i)
    result = {}
    for task, at in by_task.items():
        own, other = [], []
        for j, i in enumerate(at):
            s, control = samples[i], caches[at[(j + 1) % len(at)]]
            own.append(read_answer(gm, caches[i], s.question, s.answer))
            other.append(read_answer(gm, control, s.question, s.answer))
            if records is not None:
                records.append({"task": task, "question": s.question, "expected": s.answer,
                                "own": own[-1], "control": other[-1]})
        result[task] = summarise(own, other)
    if was_training:
        gm.train()
    return result


def main(adapter: str = "default", recipe: str = "trainers/configs/pool.yaml", samples: int = 60,
         tasks: tuple[str, ...] = ("fact", "fact_new_kind"), num_threads: int = 1, out: str | None = None,
         records_out: str | None = None, records_in: str | None = None) -> dict:
    """Read out an adapter's validation answers token by token (the samples a run of ``recipe`` logs).

    Args:
        adapter: 'default', 'none' or an adapter directory (a run's ``adapter/`` or ``checkpoint/``).
        recipe: the training config whose seed, collections and languages define the validation set.
        samples: samples per task (60, as the trainer's validation, gives the same samples).
        tasks: which validation tasks to read out (``trainers.validation``; ``fact_generic`` too: facts
            of drawn relations and shapes, as the pool plants them).
        num_threads: torch CPU threads (1 leaves a core to a training run beside it).
        out: also write the summary as JSON here.
        records_out: write every sample's per-token read-out here (JSON lines).
        records_in: summarise a read-out written by ``records_out`` instead (no model is loaded; for
            read-outs recorded before the summary had some of its rows).
    """
    if records_in:
        from .runlog import read_answers

        recs = read_answers(records_in)
        result = {task: summarise([r["own"] for r in recs if r["task"] == task],
                                  [r["control"] for r in recs if r["task"] == task])
                  for task in dict.fromkeys(r["task"] for r in recs)}
        emit({"records": records_in, "readout": result}, out)
        return result
    from gist_memory.model import GistModel

    from .config import TrainConfig
    from .data import recipe_documents
    from .validation import TASKS, validation_set, write_answers

    torch.set_num_threads(num_threads)
    cfg = TrainConfig.from_yaml(recipe)
    gm = GistModel.from_pretrained(cfg.base, adapter=adapter, num_gist_tokens=cfg.num_gist_tokens,
                                   chunk_tokens=cfg.chunk_tokens)
    extra = tuple(t for t in tasks if t not in TASKS)  # drawn after the trainer's tasks: theirs stay the same
    val = validation_set(gm, recipe_documents(cfg, "validation"), samples, seed=cfg.seed, progress=True,
                         tasks=TASKS + extra, keep=tuple(tasks))
    records: list[dict] = []
    result = read_out(gm, val, records)
    if records_out:
        write_answers(records_out, records)
    emit({"adapter": gm.adapter_identity, "recipe": recipe, "samples_per_task": samples, "readout": result}, out)
    return result


if __name__ == "__main__":
    from jsonargparse import CLI

    CLI(main, as_positional=False)
