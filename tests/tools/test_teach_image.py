"""teach_image_model: the new word, the LoRA, diffusers' loaders, scale 0, the pixel check and bad arguments.

Real built-in model, a handful of training steps: the checks are about plumbing and exactness, not quality
(bench/bench_teach.py measures quality).
"""

from __future__ import annotations

import dataclasses
import random
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tools import diffusion_models as dm
from tools import generate, scenes
from tools.arguments import InvalidArguments, parse_arguments
from tools.common import Cancelled, InvalidArgument, NullReporter
from tools.config import LabConfig
from tools.teach_image import TeachImageInput, lora, shapes, store
from tools.teach_image import run as teach_run

WORD = "star"


def _prompt_embeds(pipe, text: str) -> torch.Tensor:
    ids = pipe.tokenizer(
        text, padding="max_length", max_length=pipe.tokenizer.model_max_length, return_tensors="pt"
    )
    with torch.no_grad():
        return pipe.text_encoder(ids.input_ids)[0]


def _unet_out(pipe, embeds: torch.Tensor, scale: float) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1, 4, 16, 16, generator=g)
    with torch.no_grad():
        return pipe.unet(
            x, torch.tensor([500]), encoder_hidden_states=embeds, cross_attention_kwargs={"scale": scale}
        ).sample


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One torch thread: on oversubscribed cores (CI runners, a shared dev box) two OpenMP threads spin-wait
    for each other and a UNet call was measured 30x slower (7.6 s against 0.26 s)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def cached():
    cfg = LabConfig.create(Path("/tmp/test_teach_cache"), [])
    return dm.load_pipeline(dm.find_model(cfg, "builtin"))[0]


@pytest.fixture(scope="module")
def taught(cached, tmp_path_factory):
    """Three training steps with a large learning rate, so the LoRA is far from zero; saved to a folder."""
    rng = random.Random(0)
    items = [shapes.sample_scene(rng, WORD) for _ in range(4)]
    captions = [f"a {s.colour} {WORD} in the {s.position} on a {s.background} background" for s in items]
    pipe = lora.base_copy(cached)
    latents = lora.encode_images(pipe.vae, [shapes.render(s) for s in items])
    tc = lora.TrainConfig(rank=2, steps=3, learning_rate=5e-2, batch_size=2, prior_pool=4)
    t, log = lora.train(pipe, WORD, latents, captions, tc, lambda step, log: None)
    folder = tmp_path_factory.mktemp("adapter")
    lora.save(t, folder)
    return t, log, folder


def test_new_word_becomes_one_token_with_its_own_embedding_row(cached, taught):
    t, _, folder = taught
    assert cached.tokenizer.tokenize(WORD) != [WORD]  # before: pieces
    assert t.token_id == len(cached.tokenizer)  # appended after the old vocabulary
    assert t.pipe.tokenizer.convert_tokens_to_ids(WORD) == t.token_id
    ids = t.pipe.tokenizer(f"a red {WORD} on a blue background").input_ids
    assert t.token_id in ids
    old = cached.text_encoder.get_input_embeddings().weight
    new = t.pipe.text_encoder.get_input_embeddings().weight
    assert torch.equal(new[: len(old)], old)  # only the new row trained
    assert not torch.equal(new[t.token_id], lora.init_row(cached))


def test_new_row_starts_as_the_mean_of_the_old_shape_words(cached):
    pipe = lora.base_copy(cached)
    token_id = lora.add_word(pipe, WORD)
    table = pipe.text_encoder.get_input_embeddings().weight.detach()
    vocab = cached.tokenizer.get_vocab()
    rows = [table[vocab[w]] for w in ("circle</w>", "square</w>", "triangle</w>")]  # each a known word
    torch.testing.assert_close(table[token_id], (rows[0] + rows[1] + rows[2]) / 3)
    assert torch.equal(table[: len(cached.tokenizer)], cached.text_encoder.get_input_embeddings().weight)


def _train_briefly(
    cached, monkeypatch, tc: lora.TrainConfig, on_step=None
) -> tuple[lora.Taught, lora.TrainLog, list[list[str]]]:
    """Train on 4 star renders with `tc`, recording the captions of every text-encoder call."""
    rng = random.Random(1)
    items = [shapes.sample_scene(rng, WORD) for _ in range(4)]
    captions = [f"a {s.colour} {WORD} in the {s.position} on a {s.background} background" for s in items]
    seen: list[list[str]] = []
    encode = lora._encode_text
    monkeypatch.setattr(
        lora, "_encode_text", lambda pipe, texts: seen.append(list(texts)) or encode(pipe, texts)
    )
    pipe = lora.base_copy(cached)
    latents = lora.encode_images(pipe.vae, [shapes.render(s) for s in items])
    taught, log = lora.train(pipe, WORD, latents, captions, tc, on_step or (lambda step, log: None))
    return taught, log, seen


def test_taught_images_always_keep_their_caption(cached, monkeypatch):
    """An empty caption on a taught image teaches the unconditional prediction the new shape, and classifier-free
    guidance (cond - uncond) then cancels it (measured: 21% -> 38% stars with captions always kept)."""
    # p_empty=1: every old-world caption is ""
    tc = lora.TrainConfig(rank=2, steps=4, batch_size=2, prior_pool=4, p_empty=1.0)
    _, _, seen = _train_briefly(cached, monkeypatch, tc)
    # one call per step for the taught half; the old-world half's captions come PRIOR_CHUNK steps at a time
    taught_calls = [texts for texts in seen if any(WORD in t for t in texts)]
    prior_calls = [texts for texts in seen if texts not in taught_calls]
    assert len(taught_calls) == 4
    for texts in taught_calls:
        assert len(texts) == 2 and all(WORD in t for t in texts), texts  # always the word's caption
    assert [len(texts) for texts in prior_calls] == [2 * lora.PRIOR_CHUNK]  # 4 steps: one chunk prepared
    assert all(t == "" for t in prior_calls[0])  # the old-world half carries the empty captions


def test_embedding_row_has_its_own_learning_rate(cached, monkeypatch):
    """Adam moves each parameter by about its learning rate per step (|m / sqrt(v)| is 1 on the first step,
    at most ~1.4 on the second with bias correction): the new row moves by ~0.1 per step, the LoRA pairs by ~1e-6."""
    tc = lora.TrainConfig(
        rank=2, steps=2, batch_size=2, prior_pool=4, learning_rate=1e-6, embedding_learning_rate=0.1,
        ema_decay=None,
    )  # fmt: skip
    taught, _, _ = _train_briefly(cached, monkeypatch, tc)
    table = taught.pipe.text_encoder.get_input_embeddings().weight
    init = lora.init_row(cached)
    moved = (table[taught.token_id] - init).abs().max().item()
    assert 0.1 < moved <= 0.3  # two steps, at least one full step somewhere
    lora_b = [p for n, p in taught.pipe.unet.named_parameters() if "lora_B" in n]
    assert lora_b and max(p.abs().max().item() for p in lora_b) <= 3e-6  # B starts at 0


def test_kept_weights_are_the_moving_average_of_the_trained_ones(cached, monkeypatch):
    """With ema_decay, the LoRA pairs and the word's row at the end are the exponential moving average of the
    weights after each step, by hand: e_1 = w_1, e_k = d_k e_(k-1) + (1 - d_k) w_k, d_k = min(decay,
    k / (9 + k)) (diffusers' EMAModel warm-up), not the last step's weights."""
    after_step: list[dict[str, torch.Tensor]] = []

    def record(pipe):
        table = pipe.text_encoder.get_input_embeddings().weight
        weights = {n: p.detach().clone() for n, p in pipe.unet.named_parameters() if "lora_" in n}
        return weights | {"row": table[-1].detach().clone()}

    pipes = []  # the pipeline being trained, caught by base_copy
    base_copy = lora.base_copy
    monkeypatch.setattr(lora, "base_copy", lambda c: pipes.append(base_copy(c)) or pipes[-1])
    tc = lora.TrainConfig(rank=2, steps=4, batch_size=2, prior_pool=4, learning_rate=1e-2, ema_decay=0.5)
    taught, _, _ = _train_briefly(
        cached, monkeypatch, tc, on_step=lambda step, log: after_step.append(record(pipes[-1]))
    )
    by_hand = after_step[0]
    for k, w in enumerate(after_step[1:], start=2):
        d = min(0.5, k / (9 + k))
        by_hand = {n: d * by_hand[n] + (1 - d) * w[n] for n in w}
    kept = record(taught.pipe)
    assert kept.keys() == by_hand.keys() and len(kept) > 1
    for n in kept:
        torch.testing.assert_close(kept[n], by_hand[n], rtol=1e-5, atol=1e-7)
    last = after_step[-1]
    assert any(not torch.allclose(kept[n], last[n]) for n in kept)  # the average, not the last step


def _all_scenes_sized(size: str):
    sample = scenes.sample_scene
    return lambda rng, **kw: dataclasses.replace(sample(rng, **kw), size=size)


def test_small_old_world_scenes_weigh_prior_small_weight(cached, monkeypatch):
    """On the first step the UNet is the base model, so against the renders' velocity the prior loss depends only
    on the samples: with every old-world scene small it is prior_small_weight times the unweighted one, with none
    small it is the same."""
    first = {}
    for size in ("small", "large"):
        monkeypatch.setattr(scenes, "sample_scene", _all_scenes_sized(size))
        for weight in (1.0, 3.0):
            tc = lora.TrainConfig(
                rank=2, steps=1, batch_size=2, prior_pool=4, prior_target="render", prior_small_weight=weight
            )
            _, log, _ = _train_briefly(cached, monkeypatch, tc)
            first[size, weight] = log.prior_loss[0]
    assert first["small", 1.0] > 1e-3
    assert first["small", 3.0] == pytest.approx(3 * first["small", 1.0], rel=1e-5)
    assert first["large", 3.0] == pytest.approx(first["large", 1.0], rel=1e-5)


def test_prior_half_keeps_the_base_models_own_prediction(cached, monkeypatch):
    """prior_target='base': the old-world target is the UNet without the LoRA, so on the first step (B = 0, the
    base model exactly) the prior loss is 0; against the renders' velocity it is not. The scale-0 forward must not
    leave the LoRA switched off: the second step's prior loss is above 0 and every layer's scaling is back to 1."""
    from peft.tuners.tuners_utils import BaseTunerLayer

    losses = {}
    for target in ("base", "render"):
        tc = lora.TrainConfig(rank=2, steps=2, batch_size=2, prior_pool=4, prior_target=target)
        t, log, _ = _train_briefly(cached, monkeypatch, tc)
        losses[target] = log.prior_loss
        if target == "base":
            scalings = {m.scaling["default"] for m in t.pipe.unet.modules() if isinstance(m, BaseTunerLayer)}
            assert scalings == {1.0}
    assert losses["base"][0] < 1e-10 < losses["base"][1]
    assert losses["render"][0] > 1e-3


def test_lora_parameter_count_is_rank_times_in_plus_out(cached, taught):
    t, _, _ = taught
    by_peft = sum(p.numel() for n, p in t.pipe.unet.named_parameters() if "lora_" in n)
    formula, layers = lora.lora_parameter_count(cached.unet, t.rank)
    assert by_peft == formula == t.lora_parameters
    assert layers == sum(1 for n, _ in t.pipe.unet.named_modules() if n.endswith(".lora_A"))


def test_scale_zero_is_the_base_model_bit_for_bit(cached, taught):
    t, _, _ = taught
    embeds = _prompt_embeds(cached, "a small red circle in the top left on a blue background")
    assert torch.equal(
        _prompt_embeds(t.pipe, "a small red circle in the top left on a blue background"), embeds
    )
    base = _unet_out(cached, embeds, 1.0)
    assert torch.equal(_unet_out(t.pipe, embeds, 0.0), base)
    assert not torch.allclose(_unet_out(t.pipe, embeds, 1.0), base, atol=1e-4)  # the LoRA does something


def test_saved_adapter_loads_with_diffusers_and_gives_the_same_output(cached, taught):
    t, _, folder = taught
    assert {p.name for p in folder.iterdir()} >= {lora.LORA_FILE, lora.EMBEDDING_FILE}
    loaded = lora.load(cached, folder, WORD)  # pipe.load_lora_weights + pipe.load_textual_inversion
    assert loaded.tokenizer.convert_tokens_to_ids(WORD) == t.token_id
    prompt = f"a large yellow {WORD} in the center on a purple background"
    embeds = _prompt_embeds(t.pipe, prompt)
    torch.testing.assert_close(_prompt_embeds(loaded, prompt), embeds, rtol=0, atol=1e-6)
    for scale in (1.0, 0.5):
        torch.testing.assert_close(
            _unet_out(loaded, embeds, scale), _unet_out(t.pipe, embeds, scale), rtol=1e-5, atol=1e-5
        )
    assert torch.equal(
        _unet_out(cached, embeds, 1.0), _unet_out(lora.base_copy(cached), embeds, 1.0)
    )  # cache untouched


def test_pixel_check_names_every_shape_on_clean_renders():
    rng = random.Random(3)
    for shape in shapes.ALL_SHAPES:
        hits = [shapes.shows(shapes.render(shapes.sample_scene(rng, shape)), shape) for _ in range(40)]
        assert sum(hits) >= 38, (shape, sum(hits))
    flat = np.full((64, 64, 3), 120, np.uint8)
    assert shapes.classify(flat) is None


# ---------------------------------------------------------------- the tool end to end, and its refusals


@pytest.fixture
def star_files(folder: Path) -> list[str]:
    rng = random.Random(5)
    paths = []
    for i in range(4):
        p = folder / f"star{i}.png"
        Image.fromarray(shapes.render(shapes.sample_scene(rng, WORD, jitter=False))).save(p)
        paths.append(str(p))
    return paths


def test_teach_image_model_saves_lists_and_generate_image_uses_it(cfg: LabConfig, star_files):
    args = TeachImageInput(
        word=WORD, images=star_files, steps=2, rank=2, lora_scales=[0.0, 1.0], sample_steps=2,
        grid_prompts=[f"a red {WORD} in the top left on a blue background"],
    )  # fmt: skip
    out = teach_run(args, cfg, NullReporter())
    r = out.result
    assert r.steps_run == 2 and len(r.curve.loss) == 2
    assert r.augmented == 4 * 8 and r.not_flat == []  # 8 re-coloured, moved copies of each flat picture
    folder = Path(r.adapter_path)
    assert r.adapter_bytes == (folder / lora.LORA_FILE).stat().st_size
    assert r.lora_parameters == r.rank * r.size_by_rank[0].parameters  # size_by_rank starts at r = 1
    for cap, path in zip(r.captions, star_files, strict=True):  # the template filled in from the pixels
        seen = scenes.check_image(np.asarray(Image.open(path)))
        assert (
            cap
            == f"a {seen['size']} {seen['colour']} {WORD} in the {seen['position']} on a {seen['background']} background"
        )
    assert Image.open(r.grid.path).size[0] > 3 * 128
    assert [a["lora_id"] for a in store.list_adapters(cfg)] == [r.lora_id]

    gen = generate.run(
        generate.GenerateInput(prompt=r.grid_prompts[0], steps=2, lora=r.lora_id, lora_scale=0.5), cfg
    )
    assert WORD not in [u.word for u in gen.result.unknown_words]
    assert r.token_id in gen.result.tokens.ids

    # lora_scale reaches the hires fix's re-sampling pass too: at scale 0 both passes are the base model's
    hires = dict(prompt="a red circle in the center on a blue background", steps=4, hires_scale=2.0)
    base = generate.run(generate.GenerateInput(**hires), cfg).result
    off = generate.run(generate.GenerateInput(**hires, lora=r.lora_id, lora_scale=0.0), cfg).result
    on = generate.run(generate.GenerateInput(**hires, lora=r.lora_id, lora_scale=1.0), cfg).result
    pixels = [np.asarray(Image.open(x.images[0].path), dtype=np.int16) for x in (base, off, on)]
    assert np.array_equal(pixels[0], pixels[1])
    assert not np.array_equal(pixels[0], pixels[2])


def test_teach_image_model_stops_when_cancelled(cfg: LabConfig, star_files):
    class CancelAfterStep1(NullReporter):
        step = 0

        def progress(self, done, total=None, message=None):
            self.step = int(done)

        def check_cancelled(self):
            if self.step >= 1:  # the client cancels once the first training step is reported
                raise Cancelled()

    args = TeachImageInput(
        word=WORD, images=star_files, steps=500, grid_prompts=[f"a {WORD}"], lora_scales=[1.0], sample_steps=1
    )
    reporter = CancelAfterStep1()
    with pytest.raises(Cancelled):
        teach_run(args, cfg, reporter)
    assert reporter.step == 1  # stopped inside step 2 of 500
    assert not (cfg.output_dir / store.FOLDER).exists()  # nothing saved


def _error(args: dict) -> str:
    with pytest.raises((InvalidArguments, InvalidArgument)) as exc:
        parse_arguments(TeachImageInput, args, "teach_image_model")
    return str(exc.value)


def test_teach_image_model_bad_arguments_name_the_argument(cfg: LabConfig, star_files):
    assert "word" in _error({"word": "Star", "images": star_files})
    assert "word" in _error({"word": "st4r", "images": star_files})
    assert "images" in _error({"word": WORD, "images": star_files[:3]})
    assert "captions" in _error({"word": WORD, "images": star_files, "captions": ["a star"]})
    assert "captions" in _error({"word": WORD, "images": star_files, "captions": ["a red circle"] * 4})
    assert "template" in _error({"word": WORD, "images": star_files, "template": "a {color} {word}"})
    assert "template" in _error({"word": WORD, "images": star_files, "template": "a red thing"})
    assert "lora_scales" in _error({"word": WORD, "images": star_files, "lora_scales": [3.0]})
    with pytest.raises(InvalidArgument, match="`word`"):
        teach_run(TeachImageInput(word="circle", images=star_files), cfg, NullReporter())
    with pytest.raises(InvalidArgument, match=r"`images\[1\]`"):
        teach_run(
            TeachImageInput(word=WORD, images=[star_files[0], "/etc/passwd", *star_files[2:]]),
            cfg,
            NullReporter(),
        )
    with pytest.raises(InvalidArgument, match="`lora`"):
        generate.run(generate.GenerateInput(prompt="a red circle", lora="20260101-000000-0123456789"), cfg)
    with pytest.raises(InvalidArgument, match="`lora_scale`"):
        generate.run(generate.GenerateInput(prompt="a red circle", lora_scale=0.5), cfg)
