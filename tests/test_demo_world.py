"""The procedural demo world: deterministic, captions that match what is drawn, enough variety; its tokenizer."""

from __future__ import annotations

import numpy as np
import pytest

from ldmpick.demo import world as w
from ldmpick.files.errors import UsageError


def test_same_seed_same_samples_and_index_independent():
    a_img, a_cap, _ = w.dataset(7, 20)
    b_img, b_cap, _ = w.dataset(7, 20)
    assert np.array_equal(a_img, b_img) and a_cap == b_cap
    img, cap, _ = w.sample(7, 13)  # sample i does not depend on how many were drawn
    assert np.array_equal(img, a_img[13]) and cap == a_cap[13]
    c_img, c_cap, _ = w.dataset(8, 20)
    assert c_cap != a_cap and not np.array_equal(c_img, a_img)


def test_shape_dtype():
    img, _, _ = w.sample(0, 0)
    assert img.shape == (32, 32, 3) and img.dtype == np.uint8


def test_caption_matches_attributes_and_pixels():
    for i in range(60):
        img, cap, s = w.sample(3, i)
        assert cap.startswith(f"a {s.size} {s.colour} {s.shape} ")
        assert cap.endswith(f"on a {s.background} background")
        assert s.position in cap and s.colour != s.background
        # The corner farthest from the shape is the background colour, the shape's centre pixel the shape colour.
        cx, cy = (int(f * 32) for f in w.POSITIONS[s.position])
        assert tuple(img[0 if cy > 16 else 31, 0 if cx > 16 else 31]) == w.COLOURS[s.background]
        assert np.abs(img[cy, cx].astype(int) - w.COLOURS[s.colour]).max() <= 2
        # Large shapes cover more pixels than small ones of the same kind.
        big = w.render(w.Scene(s.shape, s.colour, "large", s.position, s.background))
        small = w.render(w.Scene(s.shape, s.colour, "small", s.position, s.background))
        cover = lambda im: int((np.abs(im.astype(int) - w.COLOURS[s.background]).sum(-1) > 30).sum())  # noqa: E731
        assert cover(big) > 2 * cover(small)


def test_variety():
    _, caps, scenes = w.dataset(0, 500)
    assert len(set(caps)) > 400
    for attr, table in (("shape", w.SHAPES), ("colour", w.COLOURS), ("size", w.SIZES), ("position", w.POSITIONS),
                        ("background", w.COLOURS)):
        assert {getattr(s, attr) for s in scenes} == set(table)
    words = {word for c in caps for word in c.split()}
    assert words <= set(w.vocabulary())


def test_bad_input():
    with pytest.raises(UsageError, match="unknown shape 'blob'"):
        w.render(w.Scene("blob", "red", "small", "center", "blue"))
    with pytest.raises(UsageError, match="at least 1"):
        w.dataset(0, 0)
    with pytest.raises(UsageError, match="non-negative"):
        w.sample_scene(-1, 0)


def test_tokenizer_round_trip_and_whole_words():
    from ldmpick.demo.training import demo_tokenizer

    tok = demo_tokenizer()
    _, caps, _ = w.dataset(1, 50)
    for cap in caps:
        ids = tok(cap).input_ids
        assert len(ids) <= tok.model_max_length
        assert tok.decode(ids, skip_special_tokens=True).strip() == cap
    for word in ("circle", "background", "purple", "center"):
        assert tok.tokenize(word) == [word + "</w>"]
