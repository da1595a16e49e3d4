"""teach_image_model's re-coloured, moved copies (tools/teach_image/augment.py): numpy only, no model."""

from __future__ import annotations

import dataclasses
import random
from pathlib import Path

import numpy as np
from PIL import Image

from tools import scenes
from tools.teach_image import augment, shapes
from tools.teach_image.lab import copies_for
from tools.teach_image.schema import TeachImageInput


def _coverage(scene: scenes.Scene) -> np.ndarray:
    """The reference coverage: the same scene drawn white on black by the renderer, scaled to [0, 1]."""
    white_on_black = dataclasses.replace(scene, colour="white", background="black")
    grey = shapes.render(white_on_black).astype(np.float64).mean(-1)
    lo, hi = np.mean(scenes.COLOURS["black"]), np.mean(scenes.COLOURS["white"])
    return (grey - lo) / (hi - lo)


def test_unmix_finds_the_colours_and_the_coverage_of_clean_renders():
    rng = random.Random(0)
    for shape in shapes.ALL_SHAPES:
        for _ in range(6):
            scene = shapes.sample_scene(rng, shape, jitter=False)
            u = augment.unmix(shapes.render(scene))
            assert u is not None, scene
            assert u.error < 1.0
            assert np.abs(u.background - scenes.COLOURS[scene.background]).max() <= 1
            assert np.abs(u.foreground - scenes.COLOURS[scene.colour]).max() <= 1
            assert np.abs(u.alpha - _coverage(scene)).max() < 0.03, scene


def test_a_picture_that_is_not_flat_gets_no_copies():
    ramp = np.linspace(0, 255, 64)
    gradient = np.stack(np.broadcast_arrays(ramp[None, :], ramp[:, None], np.full((64, 64), 90.0)), -1)
    noise = np.random.default_rng(0).integers(0, 256, (64, 64, 3))
    flat = np.full((64, 64, 3), 120)
    for picture in (gradient, noise, flat):
        assert augment.unmix(picture.astype(np.uint8)) is None
    star = shapes.render(shapes.sample_scene(random.Random(1), "star"))
    copies, captions, not_flat = augment.expand(
        [noise.astype(np.uint8), star],
        [{"size": "large"}] * 2,
        "a {colour} {word}",
        "star",
        3,
        random.Random(0),
    )
    assert (len(copies), len(captions), not_flat) == (3, 3, [0])


def test_copies_keep_the_outline_and_read_back_as_their_captions():
    rng = random.Random(2)
    for shape in ("star", "heart", "triangle"):
        for size in ("large", "medium"):
            scene = dataclasses.replace(shapes.sample_scene(rng, shape), size=size)
            picture = shapes.render(scene)
            u = augment.unmix(picture)
            assert u is not None
            for copy, attrs in augment.variants(u, 8, rng):
                seen = scenes.check_image(copy)
                assert {k: seen[k] for k in attrs} == attrs, (scene, attrs)
                assert seen["size"] == scenes.check_image(picture)["size"]
                moved = augment.unmix(copy)
                assert moved is not None
                assert abs(moved.alpha.sum() - u.alpha.sum()) < 0.01 * u.alpha.sum()  # nothing cut off
                assert shapes.classify(copy) == shapes.classify(picture)


def test_copies_follow_the_template_and_the_argument(tmp_path: Path):
    rng = random.Random(4)
    files = []
    for i in range(4):
        files.append(str(tmp_path / f"s{i}.png"))
        Image.fromarray(shapes.render(shapes.sample_scene(rng, "star", jitter=False))).save(files[-1])
    images = [np.asarray(Image.open(f)) for f in files]

    copies, captions, not_flat = copies_for(TeachImageInput(word="star", images=files), images)
    assert len(copies) == len(captions) == 4 * 8 and not_flat == []
    for copy, caption in zip(copies, captions, strict=True):
        seen = scenes.check_image(copy)
        assert caption == (
            f"a {seen['size']} {seen['colour']} star in the {seen['position']} on a {seen['background']} background"
        )
    # the same seed gives the same copies; another seed other ones
    again, _, _ = copies_for(TeachImageInput(word="star", images=files), images)
    other, _, _ = copies_for(TeachImageInput(word="star", images=files, seed=1), images)
    assert all(np.array_equal(a, b) for a, b in zip(copies, again, strict=True))
    assert not all(np.array_equal(a, b) for a, b in zip(copies, other, strict=True))

    templated, captions, _ = copies_for(
        TeachImageInput(word="star", images=files, template="{colour} {word}", augment=2), images
    )
    assert len(templated) == 8
    assert all(
        c == f"{scenes.check_image(x)['colour']} star" for x, c in zip(templated, captions, strict=True)
    )
    for k, copy in enumerate(templated):  # only what the template names varies: place and background stay
        seen, own = scenes.check_image(copy), scenes.check_image(images[k // 2])
        assert (seen["position"], seen["background"]) == (own["position"], own["background"])
    unnamed = TeachImageInput(word="star", images=files, template="a photo of a {word}")
    assert copies_for(unnamed, images) == ([], [], [])  # nothing named to vary: the pictures as they are
    assert copies_for(TeachImageInput(word="star", images=files, augment=0), images) == ([], [], [])
    hand_written = TeachImageInput(word="star", images=files, captions=["a star"] * 4)
    assert copies_for(hand_written, images) == ([], [], [])  # a caption written by hand cannot be re-coloured
