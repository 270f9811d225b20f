"""The gist attention mask (docs/design.md invariant 1) and position ids (invariant 3)."""

import random

import pytest
import torch

from gist_memory import mask as M
from gist_memory.mask import CONTEXT, GIST, PAD, POST, episode_layout, gist_attention_allowed, pad_layouts


def docstring_picture() -> torch.Tensor:
    """The ■/· matrix drawn in ``gist_memory.mask``'s docstring, as booleans."""
    rows = [line for line in M.__doc__.splitlines() if line.count("■") + line.count("·") >= 10]
    return torch.tensor([[ch == "■" for ch in line if ch in "■·"] for line in rows])


def allowed_of(chunk_lengths, k, post):
    lay = episode_layout(chunk_lengths, k, post)
    kinds, chunks, positions, _ = pad_layouts([lay])
    return gist_attention_allowed(kinds, chunks)[0], lay


def test_mask_is_the_docstring_picture():
    picture = docstring_picture()
    assert picture.shape == (13, 13)  # two chunks of 3, k=2, 3 post tokens
    allowed, _ = allowed_of([3, 3], 2, 3)
    assert torch.equal(allowed, picture)


def test_mask_exact_small_layout():
    # one chunk of 2, k=1, 2 post tokens:  c c g q a
    allowed, lay = allowed_of([2], 1, 2)
    expected = torch.tensor([
        [1, 0, 0, 0, 0],   # c: causal within its chunk
        [1, 1, 0, 0, 0],
        [1, 1, 1, 0, 0],   # g: its chunk and itself
        [0, 0, 1, 1, 0],   # q: gist and itself, not the context
        [0, 0, 1, 1, 1],
    ], dtype=torch.bool)
    assert torch.equal(allowed, expected)
    assert lay.kinds == [CONTEXT, CONTEXT, GIST, POST, POST]


def test_positions_follow_invariant_3():
    lay = episode_layout([3, 5], 2, 3)
    assert lay.positions == [0, 1, 2, 0, 1, 2, 3, 4,   # each chunk's context starts at 0
                             3, 4, 5, 6,               # gists right after their own chunk
                             7, 8, 9]                  # post starts at max(len + k) = 7
    assert lay.next_position == 7
    assert lay.chunks == [0] * 3 + [1] * 5 + [0, 0, 1, 1] + [-1] * 3


def test_padding_rows_see_only_themselves_and_nobody_sees_padding():
    layouts = [episode_layout([4], 2, 3), episode_layout([2, 6], 2, 1)]
    kinds, chunks, _, index = pad_layouts(layouts)
    allowed = gist_attention_allowed(kinds, chunks)
    pad = kinds == PAD
    assert pad.any() and torch.equal(pad, index < 0)
    eye = torch.eye(kinds.shape[1], dtype=torch.bool)
    for b in range(len(layouts)):
        rows = allowed[b][pad[b]]
        assert torch.equal(rows, eye[pad[b]])                       # a padding row sees itself only
        seen = allowed[b][~pad[b]][:, pad[b]]
        assert not seen.any()                                       # and no real token sees padding


def test_regions_align_across_the_batch():
    kinds, _, _, _ = pad_layouts([episode_layout([4], 2, 3), episode_layout([2, 6], 2, 1)])
    # context region [0, 8), gist region [8, 12), post region [12, 15) in every row
    for row in kinds.tolist():
        assert set(row[:8]) <= {CONTEXT, PAD} and set(row[8:12]) <= {GIST, PAD} and set(row[12:]) <= {POST, PAD}


@pytest.mark.parametrize("seed", range(20))
def test_no_post_token_ever_sees_context(seed):
    rng = random.Random(seed)
    k = rng.randint(1, 5)
    layouts = [episode_layout([rng.randint(1, 9) for _ in range(rng.randint(1, 4))], k, rng.randint(1, 6))
               for _ in range(rng.randint(1, 4))]
    kinds, chunks, _, _ = pad_layouts(layouts, regions=rng.random() < 0.5)
    allowed = gist_attention_allowed(kinds, chunks)
    q, kk = kinds[:, :, None], kinds[:, None, :]
    assert not (allowed & (q == POST) & (kk == CONTEXT)).any()       # the no-leak property
    assert not (allowed & (q == CONTEXT) & (kk != CONTEXT)).any()    # context never sees gists or post
    cross_chunk = chunks[:, :, None] != chunks[:, None, :]
    assert not (allowed & (q != POST) & (q != PAD) & cross_chunk).any()  # chunks never see each other
    assert allowed.any(-1).all()                                      # no all-masked row (softmax NaN)
    assert not (allowed & ~torch.ones_like(allowed[0]).tril()).any()  # causal in packed order


def test_additive_mask_shape_and_values():
    allowed, _ = allowed_of([2], 1, 2)
    add = M.additive_mask(allowed[None], torch.float32)
    assert add.shape == (1, 1, 5, 5)
    assert (add[0, 0][allowed] == 0).all() and (add[0, 0][~allowed] == torch.finfo(torch.float32).min).all()


def test_empty_chunk_is_refused():
    with pytest.raises(ValueError, match="at least one token"):
        episode_layout([3, 0], 2, 1)
