"""The denoising-strength concept's claims, checked by running generate_image on the built-in model with the
concept's own input (a red circle on blue) and measuring pixels: background colour and object position."""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest
from PIL import Image

from tools import diffusion_models, generate
from tools.config import LabConfig
from tools.explain.knowledge import concept_by_id

pytestmark = pytest.mark.skipif(
    diffusion_models.check_folder(diffusion_models.BUILTIN_DIR) is not None,
    reason="built-in weights not exported",
)

CONCEPT = concept_by_id("denoising_strength")
INIT_URI = CONCEPT.try_it.arguments["init_image"]
YELLOW_CIRCLE = "a medium yellow circle in the top left on a blue background"  # only the colour differs
MOVED_SQUARE = "a large yellow square in the bottom right on a green background"  # everything differs


def _rgb(im) -> np.ndarray:
    return np.asarray(im.convert("RGB"), dtype=np.float32)


INIT = _rgb(Image.open(io.BytesIO(base64.b64decode(INIT_URI.split(",", 1)[1]))))


def background(im: np.ndarray) -> np.ndarray:
    """The background colour: the per-channel median (the object covers under a quarter of the pixels)."""
    return np.median(im.reshape(-1, 3), axis=0)


def object_stats(im: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Centroid (y, x) and mean colour of the pixels far from the image's own background colour."""
    mask = np.abs(im - background(im)).sum(-1) > 120
    ys, xs = np.nonzero(mask)
    return np.array([ys.mean(), xs.mean()]), im[mask].mean(0)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("strength")
    cfg = LabConfig.create(tmp / "out", [tmp])
    out = {}
    for prompt, strengths in ((YELLOW_CIRCLE, [0.3, 1.0]), (MOVED_SQUARE, [0.3, 0.75, 1.0])):
        args = generate.GenerateInput(prompt=prompt, init_image=INIT_URI, strengths=strengths, steps=10)
        for p in generate.run(args, cfg).result.sweep:
            out[prompt, p.strength] = _rgb(Image.open(p.image.path))
    return out


def test_the_concept_text_says_low_strength_keeps_the_layout_but_not_necessarily_the_colour():
    en, zh = CONCEPT.explanation.en, CONCEPT.explanation.zh
    assert "layout" in en and "yellow at 0.2-0.3" in en and "not necessarily the colours" in en
    assert "布局" in zh and "0.2 到 0.3 时圆就已经变黄" in zh and "不一定保留颜色" in zh
    assert "layout and colours survive" not in en and "构图和颜色得以保留" not in zh  # the old, false claim


def test_at_0_3_the_background_and_position_stay_but_the_circle_already_turns_yellow(runs):
    init_pos, init_colour = object_stats(INIT)
    out = runs[YELLOW_CIRCLE, 0.3]
    pos, colour = object_stats(out)
    assert np.linalg.norm(background(out) - background(INIT)) < 30  # still the input's blue
    assert np.linalg.norm(pos - init_pos) < 2  # the circle has not moved (pixels)
    assert colour[1] - init_colour[1] > 100 and colour[0] > 180  # green channel up from 40: red -> yellow


def test_low_strength_keeps_the_layout_while_full_strength_redraws_it(runs):
    init_pos, _ = object_stats(INIT)
    low, mid, full = (runs[MOVED_SQUARE, s] for s in (0.3, 0.75, 1.0))
    assert np.linalg.norm(background(low) - background(INIT)) < 40  # blue kept at 0.3
    assert np.linalg.norm(object_stats(low)[0] - init_pos) < 3  # still top left
    # around 0.75 the background follows the prompt's green, while the object still sits where it was
    assert background(mid)[1] - background(mid)[2] > 60
    assert np.linalg.norm(object_stats(mid)[0] - init_pos) < 4
    # at 1.0 the layout is redrawn: the object moves to the bottom right, the background is green
    full_pos, _ = object_stats(full)
    assert np.linalg.norm(full_pos - init_pos) > 20 and full_pos.min() > 32
    assert background(full)[1] - background(full)[2] > 60
