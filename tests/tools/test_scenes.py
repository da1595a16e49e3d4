"""The procedural scene world: sampler, prompts, tokenizer files, and the pixel checker on ground truth."""

from __future__ import annotations

import random
import re
import sys

import numpy as np

from tools import builtin_vocab, scenes


def test_checker_reads_every_attribute_of_rendered_scenes_exactly():
    rng = random.Random(7)
    items = [scenes.sample_scene(rng, allow_held_out=True) for _ in range(600)]
    wrong = {a: 0 for a in scenes.ATTRIBUTES}
    for s in items:
        got = scenes.check_image(scenes.render(s))
        for a in scenes.ATTRIBUTES:
            wrong[a] += got[a] != s.attributes()[a]
    assert wrong == {a: 0 for a in scenes.ATTRIBUTES}


def test_checker_scores_eval_cases_rendered_without_jitter_as_perfect():
    cases = scenes.eval_cases()
    images = [
        scenes.render(scenes.Scene(c["colour"], c["shape"], c["size"], c["position"], c["background"]))
        for c in cases
    ]
    assert scenes.score(cases, images) == {a: 1.0 for a in (*scenes.ATTRIBUTES, "all")}


def test_checker_finds_no_shape_on_a_flat_image():
    got = scenes.check_image(np.full((64, 64, 3), 200, np.uint8))
    assert got["shape"] is None and got["colour"] is None and got["background"] == "white"


def test_checker_resizes_larger_images_first():
    s = scenes.Scene("red", "triangle", "large", "bottom right", "blue")
    from PIL import Image

    big = Image.fromarray(scenes.render(s)).resize((256, 256), Image.Resampling.NEAREST)
    assert scenes.check_image(big) == s.attributes()


def test_training_sampler_never_draws_a_held_out_combination():
    rng = random.Random(0)
    for _ in range(5000):
        s = scenes.sample_scene(rng)
        assert (s.colour, s.shape, s.position) not in scenes.HELD_OUT
        assert s.background != s.colour


def test_eval_list_has_at_least_50_full_prompts_and_covers_every_held_out_combination():
    cases = scenes.eval_cases()
    assert len(cases) >= 50 and cases == scenes.eval_cases()  # fixed
    held = {(c["colour"], c["shape"], c["position"]) for c in cases if c["held_out"] == "yes"}
    assert held == set(scenes.HELD_OUT)
    for c in cases:
        for a in scenes.ATTRIBUTES:
            assert c[a] in c["prompt"], (a, c)


def test_render_is_deterministic_for_a_seed():
    a = [scenes.render(scenes.sample_scene(random.Random(3))) for _ in range(2)]
    assert np.array_equal(a[0], a[1])


def test_prompts_use_only_vocabulary_words_and_about_one_in_ten_is_empty():
    rng = random.Random(1)
    prompts = [scenes.describe(scenes.sample_scene(rng), rng) for _ in range(3000)]
    empty = sum(p == "" for p in prompts) / len(prompts)
    assert 0.07 < empty < 0.13
    words = {w for p in prompts for w in re.findall(r"[a-z]+", p)}
    assert words <= set(scenes.VOCABULARY)
    assert len(set(prompts)) > 1000  # many phrasings


def test_every_vocabulary_word_is_one_token_of_the_built_in_tokenizer(tmp_path):
    tok = builtin_vocab.load_tokenizer(builtin_vocab.write_tokenizer_files(tmp_path))
    for word in scenes.VOCABULARY:
        ids = tok(word, add_special_tokens=False).input_ids
        assert len(ids) == 1, (word, tok.convert_ids_to_tokens(ids))
    ids = tok("a small red circle, top left", add_special_tokens=False).input_ids
    assert tok.convert_ids_to_tokens(ids) == [
        "a</w>",
        "small</w>",
        "red</w>",
        "circle</w>",
        ",</w>",
        "top</w>",
        "left</w>",
    ]
    assert len(tok("zebra", add_special_tokens=False).input_ids) == 5  # unknown words fall back to letters


def test_scenes_module_does_not_import_torch():
    import subprocess

    code = "import sys, tools.scenes, tools.builtin_vocab; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
