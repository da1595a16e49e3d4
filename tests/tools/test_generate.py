"""generate_image and list_models on a tiny random Stable Diffusion folder built here (fixed seeds)."""

from __future__ import annotations

import base64
import io
import json
import subprocess
import sys
import time

import numpy as np
import pytest
from PIL import Image

from tools import builtin_vocab, diffusion_models, generate
from tools.common import Cancelled, InvalidArgument, NullReporter
from tools.config import LabConfig, Limits


def build_tiny_sd(folder, seed: int = 0, zero_unet: bool = False):
    """A genuine StableDiffusionPipeline from random tiny components: 32x32 images, 8x8x4 latents.

    zero_unet: the UNet predicts zero noise, so sampling only rescales the starting latent (a known answer).
    """
    import torch
    from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(seed)
    tok = builtin_vocab.load_tokenizer(builtin_vocab.write_tokenizer_files(folder.parent / "tok_files"))
    vocab = tok.get_vocab()
    text = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=len(vocab),
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=1,
            num_attention_heads=2,
            max_position_embeddings=builtin_vocab.MAX_LENGTH,
            bos_token_id=vocab[builtin_vocab.BOS],
            eos_token_id=vocab[builtin_vocab.EOS],
            pad_token_id=vocab[builtin_vocab.EOS],
        )
    )
    unet = UNet2DConditionModel(
        sample_size=8,
        in_channels=4,
        out_channels=4,
        block_out_channels=(16, 32),
        layers_per_block=1,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=32,
        attention_head_dim=2,
        norm_num_groups=8,
    )
    if zero_unet:
        torch.nn.init.zeros_(unet.conv_out.weight)
        torch.nn.init.zeros_(unet.conv_out.bias)
    vae = AutoencoderKL(
        block_out_channels=(8, 16, 16),
        down_block_types=("DownEncoderBlock2D",) * 3,
        up_block_types=("UpDecoderBlock2D",) * 3,
        latent_channels=4,
        norm_num_groups=8,
        sample_size=32,
        layers_per_block=1,
    )
    with torch.no_grad():  # a near-deterministic encoder: log-variance -30, so a latent sample is its mean
        vae.quant_conv.weight[4:] = 0
        vae.quant_conv.bias[4:] = -30
    sched = DDIMScheduler(
        beta_schedule="scaled_linear",
        beta_start=0.00085,
        beta_end=0.012,
        clip_sample=False,
        set_alpha_to_one=False,
        prediction_type="epsilon",
    )
    pipe = StableDiffusionPipeline(
        vae=vae,
        text_encoder=text,
        tokenizer=tok,
        unet=unet,
        scheduler=sched,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def tiny_sd(tmp_path_factory):
    return build_tiny_sd(tmp_path_factory.mktemp("models") / "tiny-sd")


@pytest.fixture(scope="module")
def zero_sd(tmp_path_factory):
    return build_tiny_sd(tmp_path_factory.mktemp("models") / "zero-sd", zero_unet=True)


@pytest.fixture
def cfg(tmp_path, tiny_sd, zero_sd):
    return LabConfig.create(
        tmp_path / "out", [tmp_path], [tiny_sd, zero_sd], Limits(max_steps=50, max_images=3)
    )


def gen(cfg, reporter=None, **kw):
    kw.setdefault("model", "tiny-sd")
    kw.setdefault("steps", 4)
    return generate.run(generate.GenerateInput(prompt=kw.pop("prompt", "a red circle"), **kw), cfg, reporter)


def pixels(saved) -> np.ndarray:
    return np.asarray(Image.open(saved.path).convert("RGB"), dtype=np.float32)


def test_a_tiny_sd_folder_loads_through_model_dirs_and_generates(cfg):
    out = gen(cfg, prompt="a small red circle in the top left on a blue background")
    r = out.result
    assert r.model == "tiny-sd" and r.mode == "text2img" and (r.width, r.height) == (32, 32)
    assert r.shapes.latent == [1, 4, 8, 8] and r.shapes.image == [1, 3, 32, 32]
    assert r.shapes.text_embedding == [2, builtin_vocab.MAX_LENGTH, 32]  # guidance doubles the batch
    assert r.tokens.tokens[1:4] == ["a</w>", "small</w>", "red</w>"] and not r.tokens.truncated
    assert r.images[0].uri.startswith("mllab://outputs/generated/") and pixels(r.images[0]).shape == (
        32,
        32,
        3,
    )
    assert r.timings.denoise_s > 0 and r.timings.decode_s > 0 and r.device == "cpu" and r.dtype == "float32"
    png = Image.open(io.BytesIO(out.images[0].png))
    assert png.size == (256, 256)  # tiny pictures are shown enlarged inline


def test_same_seed_gives_the_same_image_and_another_seed_does_not(cfg):
    a, b, c = (pixels(gen(cfg, seed=s).result.images[0]) for s in (5, 5, 6))
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


def test_num_images_returns_that_many_distinct_pictures(cfg):
    r = gen(cfg, num_images=2).result
    assert len(r.images) == 2 and r.shapes.latent[0] == 2
    assert not np.array_equal(pixels(r.images[0]), pixels(r.images[1]))


@pytest.mark.parametrize("scheduler", ["default", "ddim", "euler", "euler_a", "dpm++", "pndm"])
def test_every_scheduler_runs(cfg, scheduler):
    r = gen(cfg, scheduler=scheduler, steps=3).result
    assert len(r.images) == 1 and np.isfinite(pixels(r.images[0])).all()


def test_img2img_moves_further_from_the_input_as_strength_grows(cfg, tmp_path):
    # With random weights the VAE does not reproduce the input, so compare against the strength-0 limit:
    # the input encoded and decoded once. The zero-noise UNet makes DDIM return init_latent + noise *
    # sqrt((1 - a) / a) at the noise level a that strength selects: further away as strength grows.
    import torch

    init = np.zeros((32, 32, 3), np.uint8)
    init[:, :16] = (220, 40, 40)
    init[16:, 16:] = (40, 80, 220)
    path = tmp_path / "init.png"
    Image.fromarray(init).save(path)
    pipe, _ = diffusion_models.load_pipeline(diffusion_models.find_model(cfg, "zero-sd"))
    with torch.no_grad():
        x = torch.from_numpy(init).permute(2, 0, 1)[None].float() / 127.5 - 1
        ref = pipe.vae.decode(pipe.vae.encode(x).latent_dist.mode()).sample
    ref = ((ref[0].clamp(-1, 1) + 1) * 127.5).permute(1, 2, 0).numpy()
    dist = []
    for strength in (0.25, 0.5, 1.0):
        r = gen(
            cfg, model="zero-sd", init_image=str(path), strength=strength, steps=8, guidance_scale=1.0
        ).result
        assert r.mode == "img2img" and r.steps_run == int(8 * strength)
        dist.append(float(np.abs(pixels(r.images[0]) - ref).mean()))
    assert dist[0] < dist[1] < dist[2], dist


def test_img2img_takes_a_data_uri_and_a_resource_uri_of_an_earlier_output(cfg):
    first = gen(cfg).result.images[0]
    r = gen(cfg, init_image=first.uri, strength=0.5).result
    assert r.mode == "img2img"
    with open(first.path, "rb") as f:
        b64 = base64.b64encode(f.read()).decode()
    assert gen(cfg, init_image=f"data:image/png;base64,{b64}", strength=0.5).result.mode == "img2img"


class CountingReporter(NullReporter):
    def __init__(self, cancel_at: int | None = None):
        self.calls: list[tuple] = []
        self.cancel_at = cancel_at

    def progress(self, done, total=None, message=None):
        self.calls.append((done, total))

    def check_cancelled(self):
        if self.cancel_at is not None and len(self.calls) >= self.cancel_at:
            raise Cancelled()


def test_progress_is_reported_once_per_denoising_step(cfg):
    rep = CountingReporter()
    gen(cfg, steps=5, reporter=rep)
    assert rep.calls == [(i, 5) for i in range(1, 6)]


def test_cancellation_stops_the_loop_within_a_step(cfg):
    rep = CountingReporter(cancel_at=2)
    with pytest.raises(Cancelled):
        gen(cfg, steps=20, reporter=rep)
    assert len(rep.calls) == 2
    assert len(gen(cfg, steps=3).result.images) == 1  # the pipeline still works afterwards


class CancelInsideUnet:
    """Cancels as soon as the UNet's forward has started: the next check must stop it before that forward ends."""

    def __init__(self):
        self.started = self.finished = 0

    def progress(self, done, total=None, message=None):
        return None

    def check_cancelled(self):
        if self.started:
            raise Cancelled()


def test_cancellation_is_seen_inside_a_unet_forward_not_only_between_steps(cfg):
    rep = CancelInsideUnet()
    pipe, _ = diffusion_models.load_pipeline(diffusion_models.find_model(cfg, "tiny-sd"))
    hooks = [
        pipe.unet.register_forward_pre_hook(lambda m, a: setattr(rep, "started", rep.started + 1)),
        pipe.unet.register_forward_hook(lambda m, a, o: setattr(rep, "finished", rep.finished + 1)),
    ]
    try:
        with pytest.raises(Cancelled):
            gen(cfg, steps=5, reporter=rep)
    finally:
        for h in hooks:
            h.remove()
    assert rep.started == 1 and rep.finished == 0  # stopped inside the first forward pass
    assert len(pipe.unet._forward_pre_hooks) == 0  # the call removed its cancellation hooks
    assert len(gen(cfg, steps=2).result.images) == 1


def test_a_call_waiting_for_another_generation_can_be_cancelled(cfg):
    class AlwaysCancelled:
        def progress(self, *a, **k):
            return None

        def check_cancelled(self):
            raise Cancelled()

    diffusion_models.load_pipeline(diffusion_models.find_model(cfg, "tiny-sd"))
    with diffusion_models.GENERATE_LOCK:  # another call is generating
        t0 = time.monotonic()
        with pytest.raises(Cancelled):
            generate.run(generate.GenerateInput(prompt="a", model="tiny-sd", steps=2), cfg, AlwaysCancelled())
        assert time.monotonic() - t0 < 1.0


def test_show_steps_returns_a_strip_of_predictions(cfg):
    out = gen(cfg, steps=6, show_steps=True)
    r = out.result
    assert r.steps_shown == [1, 2, 3, 4, 5, 6] and r.steps_strip is not None
    assert [lb.split("\n")[0] for lb in r.frame_labels] == [f"step {k}/6" for k in range(1, 7)]
    # 32 px frames are enlarged x4 so that the two-line label under each fits
    assert r.steps_strip.width == 6 * 128 + 5 * 2 and r.steps_strip.height > 128 and len(out.images) == 2


def test_a_prompt_over_the_token_limit_is_reported_truncated(cfg):
    r = gen(cfg, prompt=" ".join(["red"] * 40)).result
    assert (
        r.tokens.truncated and r.tokens.count == builtin_vocab.MAX_LENGTH and "red" in r.tokens.dropped_text
    )


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        ({"model": "nope"}, "model"),
        ({"steps": 51}, "steps"),
        ({"num_images": 4}, "num_images"),
        ({"width": 36}, "width"),
        ({"height": 128}, "height"),
        ({"strength": 0.3}, "strength"),
        ({"init_image": "/etc/passwd", "strength": 0.5}, "init_image"),
        ({"init_image": "data:image/png;base64,aGVsbG8=", "strength": 0.5}, "init_image"),
        ({"init_image": "mllab://outputs/generated/missing.png", "strength": 0.5}, "init_image"),
    ],
)
def test_bad_arguments_raise_invalid_argument_naming_the_argument(cfg, kwargs, argument):
    with pytest.raises(InvalidArgument) as err:
        gen(cfg, **kwargs)
    assert err.value.argument == argument and argument in str(err.value)


@pytest.mark.parametrize("prompt", ["", "   \n"])
def test_an_empty_prompt_is_refused_with_a_message_saying_what_to_give(cfg, prompt):
    with pytest.raises(InvalidArgument) as err:
        gen(cfg, prompt=prompt)
    assert err.value.argument == "prompt"
    assert "say what to draw" in str(err.value) and "unconditional" in str(err.value)


def test_img2img_strength_too_small_for_the_steps_is_refused(cfg, tmp_path):
    Image.new("RGB", (32, 32)).save(tmp_path / "x.png")
    with pytest.raises(InvalidArgument, match="strength"):
        gen(cfg, init_image=str(tmp_path / "x.png"), strength=0.1, steps=4)


def test_init_image_over_the_pixel_cap_is_refused_before_decoding(tmp_path, tiny_sd):
    cfg = LabConfig.create(tmp_path / "out", [tmp_path], [tiny_sd], Limits(max_pixels=1000))
    Image.new("RGB", (64, 64)).save(tmp_path / "big.png")
    with pytest.raises(InvalidArgument, match="init_image"):
        gen(cfg, init_image=str(tmp_path / "big.png"), strength=0.5)


def test_a_folder_that_is_not_a_diffusers_pipeline_is_listed_as_a_problem_and_refused(tmp_path, tiny_sd):
    bad = tmp_path / "not-a-model"
    bad.mkdir()
    (bad / "model_index.json").write_text(json.dumps({"_class_name": "FluxPipeline"}))
    empty = tmp_path / "empty"
    empty.mkdir()
    cfg = LabConfig.create(tmp_path / "out", [tmp_path], [tiny_sd, bad, empty])
    listed = diffusion_models.list_models(cfg)
    assert "tiny-sd" in [m.name for m in listed.models]
    assert any("not-a-model" in p and "FluxPipeline" in p for p in listed.problems)
    assert any("empty" in p and "model_index.json" in p for p in listed.problems)
    for name in ("not-a-model", "empty"):
        with pytest.raises(InvalidArgument) as err:
            gen(cfg, model=name)
        assert err.value.argument == "model"


def test_list_models_describes_sizes_schedulers_and_token_limit(cfg):
    (m,) = [m for m in diffusion_models.list_models(cfg).models if m.name == "tiny-sd"]
    assert (m.native_size, m.size_multiple, m.latent_downscale) == (32, 8, 4)
    assert m.max_prompt_tokens == builtin_vocab.MAX_LENGTH and "euler_a" in m.schedulers
    assert m.prediction_type == "epsilon" and m.pipeline == "StableDiffusionPipeline"


def test_the_pipeline_is_loaded_once_and_cached(cfg):
    gen(cfg)
    r = gen(cfg).result
    assert r.pipeline_cached and r.timings.load_s == 0.0


def test_importing_the_tool_does_not_import_torch_or_diffusers():
    code = (
        "import sys, tools.generate, tools.diffusion_models; "
        "assert not {'torch', 'diffusers', 'transformers'} & set(sys.modules), 'heavy import'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_show_steps_in_img2img_starts_with_the_input_and_the_noised_start_and_labels_every_frame(
    cfg, tmp_path
):
    from diffusers import DDIMScheduler

    Image.new("RGB", (32, 32), (200, 30, 30)).save(tmp_path / "in.png")
    r = gen(cfg, init_image=str(tmp_path / "in.png"), strength=0.5, steps=8, show_steps=True).result
    n = len(r.steps_shown)
    assert r.steps_shown == [1, 2, 3, 4] and len(r.frame_labels) == n + 2
    assert r.frame_labels[:2] == ["input", "noised start\n(strength 0.5)"]
    # each step's label: its number, its timestep and the noise share sqrt(1 - alpha_bar_t) of the scheduler
    alphas = DDIMScheduler.from_pretrained(r.model_path, subfolder="scheduler").alphas_cumprod
    for k, label in zip(r.steps_shown, r.frame_labels[2:], strict=True):
        head, tail = label.split("\n")
        assert head == f"step {k}/4"
        t = int(tail.split(",")[0].removeprefix("t="))
        assert tail == f"t={t}, noise {float((1 - alphas[t]).sqrt()):.2f}"
    ts = [int(lb.split("\n")[1].split(",")[0][2:]) for lb in r.frame_labels[2:]]
    assert ts == sorted(ts, reverse=True) and ts[0] < 1000 * 0.5 + 1  # img2img starts half-way down
    assert r.steps_strip is not None and r.steps_strip.width == (n + 2) * 128 + (n + 1) * 2
    strip = pixels(r.steps_strip)
    assert np.abs(strip[:128, :128] - [200, 30, 30]).max() < 2  # the first frame is the input itself
    assert strip.shape[0] > 128 and (strip[130:, :128] < 100).any()  # a label written under it


def test_a_strength_sweep_returns_one_labelled_frame_per_strength_each_equal_to_a_single_run(cfg, tmp_path):
    Image.new("RGB", (32, 32), (200, 30, 30)).save(tmp_path / "in.png")
    init = str(tmp_path / "in.png")
    out = gen(cfg, init_image=init, strengths=[0.25, 0.5, 1.0], steps=8, seed=3)
    r = out.result
    assert [p.strength for p in r.sweep] == [0.25, 0.5, 1.0] and [p.steps_run for p in r.sweep] == [2, 4, 8]
    assert len(r.images) == 3 and r.strength is None and r.sweep_strip is not None
    assert r.frame_labels[0] == "input" and [lb.split("\n")[0] for lb in r.frame_labels[1:]] == [
        "strength 0.25",
        "strength 0.5",
        "strength 1",
    ]
    ref = np.asarray(Image.open(init).convert("RGB"), dtype=np.float32)
    for p in r.sweep:  # same seed: each frame is what a call with that single strength gives
        single = gen(cfg, init_image=init, strength=p.strength, steps=8, seed=3).result
        assert np.array_equal(pixels(p.image), pixels(single.images[0]))
        assert p.mean_abs_diff == pytest.approx(float(np.abs(pixels(p.image) - ref).mean()), abs=1e-3)


@pytest.mark.parametrize(
    ("kwargs", "argument", "says"),
    [
        ({"strengths": [0.2, 0.5]}, "strengths", "only used with init_image"),
        ({"init_image": "x.png", "strength": 0.5, "strengths": [0.2, 0.5]}, "strengths", "not both"),
        ({"init_image": "x.png", "strengths": [0.2, 1.5]}, "strengths", "between 0 and 1"),
        ({"init_image": "x.png", "strengths": [0.01, 0.5]}, "strengths", "at least"),
        ({"init_image": "x.png", "strengths": [0.5]}, "strengths", ""),
        ({"init_image": "x.png", "strengths": [0.2, 0.5], "num_images": 2}, "num_images", "one image per"),
        ({"init_image": "x.png", "strengths": [0.2, 0.5], "show_steps": True}, "show_steps", "strength"),
    ],
)
def test_bad_strengths_are_refused_naming_the_argument(kwargs, argument, says):
    from pydantic import ValidationError

    with pytest.raises(ValidationError) as err:
        generate.GenerateInput(prompt="a red circle", steps=8, **kwargs)
    assert argument in str(err.value) and says in str(err.value)
