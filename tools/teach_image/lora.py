"""Teach a text-to-image model a new word: a new token embedding plus a LoRA on the UNet's attention (the lesson).

What changes and what stays frozen:
  * the tokenizer gains one token (the word), the text encoder one embedding row; only that row trains
    (textual inversion), started from the mean of the embeddings of 'circle', 'square' and 'triangle';
  * every attention projection of the UNet (to_q, to_k, to_v, to_out.0) gets a LoRA pair (peft): W x becomes
    W x + (alpha / r) B A x with A (r x in) and B (out x r), B starting at zero so training starts from the
    base model exactly; W stays frozen;
  * everything else (VAE, the rest of the text encoder and UNet) is frozen.
The loss is the base model's own: v-prediction MSE on noised latents of the taught images, always captioned with
the word. Half of every batch is the model's old world (procedural scenes with everyday captions, some empty):
"prior preservation", as DreamBooth does, so the old words keep their meaning; its target is the base model's own
prediction (the UNet with the LoRA off), so the adapter learns to leave old prompts as they were; scenes with a
small shape weigh more there, as they are the first to drift. The new row gets its own, much larger learning rate:
one vector has to travel from the mean of the old shape words to the new word. What is kept at the end is the moving average of the weights.
"""

from __future__ import annotations

import copy
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import DDIMScheduler, StableDiffusionPipeline
from diffusers.training_utils import EMAModel
from diffusers.utils import convert_state_dict_to_diffusers
from peft import LoraConfig
from peft.utils import get_peft_model_state_dict
from safetensors.torch import save_file

from tools import phrasing, scenes

TARGET_MODULES = ["to_q", "to_k", "to_v", "to_out.0"]
# the new embedding starts as the mean of the shape nouns the model knows: a thing with a colour, a size and a
# place, none of the three in particular (from the word 'shape', one star run in five stayed at 44-48%)
INIT_WORDS = ("circle</w>", "square</w>", "triangle</w>")
LORA_FILE = "pytorch_lora_weights.safetensors"  # diffusers' name: load_lora_weights(folder) finds it
EMBEDDING_FILE = "learned_embeds.safetensors"  # diffusers' textual-inversion format: {word: (hidden,)}


@dataclass
class TrainConfig:
    rank: int = 4
    steps: int = 800
    learning_rate: float = 2e-3  # the LoRA pairs (AdamW, no weight decay)
    embedding_learning_rate: float | None = 0.1  # the new row's own rate (None: learning_rate)
    batch_size: int = 4  # taught images per step; as many old-world scenes join them (prior preservation)
    prior_weight: float = 2.0  # weight of the old-world half of the loss (0 = no prior preservation)
    prior_pool: int = 256  # old-world scenes rendered and encoded once at the start
    prior_target: str = "base"  # the old-world half's target: "base" (the UNet without LoRA) or "render" (v)
    # old-world scenes with a small shape weigh this much in the prior half: their few pixels carry little of
    # a latent MSE, and small squares and triangles are what drifts first (to round blobs)
    prior_small_weight: float = 6.0
    max_grad_norm: float = 1.0  # gradient clipping, as diffusers' training scripts do
    # share of the old-world scenes with empty captions: the unconditional prediction stays the base model's
    p_empty: float = 0.1
    seed: int = 0
    time_budget_s: float = 110.0
    # the weights kept at the end are an exponential moving average of the trained ones (diffusers' EMAModel,
    # decay min(decay, k / (9 + k)) at step k): one run's end point wanders less with the last few batches
    ema_decay: float | None = 0.99


@dataclass
class TrainLog:
    steps: list[int] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)  # taught images
    prior_loss: list[float] = field(default_factory=list)  # old-world scenes
    seconds: float = 0.0
    stopped_by_time: bool = False


@dataclass
class Taught:
    """The model after teaching: its own copies of the text encoder, tokenizer and UNet (the cache is untouched)."""

    pipe: Any
    word: str
    token_id: int
    rank: int
    lora_parameters: int


def base_copy(cached: Any) -> Any:
    """A pipeline sharing the cached VAE (frozen, read only) with its own tokenizer, text encoder and UNet."""
    pipe = StableDiffusionPipeline(
        vae=cached.vae,
        text_encoder=copy.deepcopy(cached.text_encoder),
        tokenizer=copy.deepcopy(cached.tokenizer),
        unet=copy.deepcopy(cached.unet),
        scheduler=DDIMScheduler.from_config(cached.scheduler.config),
        safety_checker=None,  # type: ignore[arg-type]  # the built-in model has none
        feature_extractor=None,  # type: ignore[arg-type]
        requires_safety_checker=False,
    )
    pipe.set_progress_bar_config(disable=True)  # type: ignore[attr-defined]  # DiffusionPipeline method
    return pipe


def init_row(pipe: Any) -> torch.Tensor:
    """(hidden,) the new word's starting embedding: the mean of the INIT_WORDS rows of `pipe`'s text encoder."""
    ids = pipe.tokenizer.convert_tokens_to_ids(list(INIT_WORDS))
    return pipe.text_encoder.get_input_embeddings().weight[ids].detach().mean(dim=0)


def add_word(pipe: Any, word: str) -> int:
    """Add `word` to the tokenizer as one token and give it an embedding row (init_row's); its id."""
    pipe.tokenizer.add_tokens(word)  # as diffusers' load_textual_inversion does, so both split prompts alike
    token_id = pipe.tokenizer.convert_tokens_to_ids(word)
    pipe.text_encoder.resize_token_embeddings(len(pipe.tokenizer))
    table = pipe.text_encoder.get_input_embeddings().weight  # (vocab + 1, hidden)
    with torch.no_grad():
        table[token_id] = init_row(pipe)
    return token_id


def add_lora(pipe: Any, rank: int) -> int:
    """Wrap the UNet's attention projections with rank-`rank` LoRA layers (peft); the trainable count."""
    pipe.unet.requires_grad_(False)
    config = LoraConfig(r=rank, lora_alpha=rank, init_lora_weights="gaussian", target_modules=TARGET_MODULES)
    pipe.unet.add_adapter(config)  # diffusers' PeftAdapterMixin: peft's inject_adapter_in_model on the UNet
    return sum(p.numel() for p in pipe.unet.parameters() if p.requires_grad)


def lora_parameter_count(unet, rank: int) -> tuple[int, int]:
    """(parameters, layers) of a rank-`rank` LoRA on `unet`'s TARGET_MODULES: r x (in + out) per Linear."""
    total, layers = 0, 0
    for name, module in unet.named_modules():
        if isinstance(module, torch.nn.Linear) and any(name.endswith("." + t) for t in TARGET_MODULES):
            total += rank * (module.in_features + module.out_features)
            layers += 1
    return total, layers


@torch.no_grad()
def encode_images(vae, images: list[np.ndarray]) -> torch.Tensor:
    """(N, 64, 64, 3) uint8 -> (N, 4, 16, 16) scaled latents (the VAE posterior's mean)."""
    x = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float() / 127.5 - 1  # (N, 3, 64, 64)
    x = x.to(vae.device, vae.dtype)  # pixels in [-1, 1]
    # in chunks of 16: each VAE call stays short, so a cancellation check between blocks comes soon
    means = [vae.encode(chunk).latent_dist.mean for chunk in x.split(16)]
    return torch.cat(means) * vae.config.scaling_factor  # (N, 4, 16, 16)


def _prior_pool(vae, n: int, rng: random.Random) -> tuple[torch.Tensor, list[scenes.Scene]]:
    items = [scenes.sample_scene(rng) for _ in range(n)]
    return encode_images(vae, [scenes.render(s) for s in items]), items


def _encode_text(pipe, captions: list[str]) -> torch.Tensor:
    ids = pipe.tokenizer(
        captions, padding="max_length", max_length=pipe.tokenizer.model_max_length, truncation=True,
        return_tensors="pt",
    ).input_ids.to(pipe.device)  # fmt: skip
    return pipe.text_encoder(ids)[0]  # (B, T, hidden)


PRIOR_CHUNK = (
    16  # steps' worth of old-world samples prepared in one batch (a batch of 64 costs a third per sample)
)


@torch.no_grad()
def _prior_batches(
    pipe, noise_sched, prior_latents, prior_scenes, tc: TrainConfig, rng: random.Random, gen: torch.Generator
) -> list[tuple[torch.Tensor, ...]]:
    """PRIOR_CHUNK batches of old-world samples: (noised latents, timesteps, text states, targets, weights) each.

    The target is the base model's own prediction (the UNet with LoRA scale 0 is the base UNet exactly) when
    tc.prior_target == "base": the adapter is asked not to change what the model already did for old words;
    otherwise the renders' velocity. Neither depends on the adapter being trained, so preparing them ahead
    changes only the cost.
    """
    n = PRIOR_CHUNK * tc.batch_size
    pidx = [rng.randrange(len(prior_scenes)) for _ in range(n)]
    texts = [phrasing.describe(prior_scenes[i], rng, p_empty=tc.p_empty) for i in pidx]
    x0 = prior_latents[pidx]
    noise = torch.randn(x0.shape, generator=gen)
    t = torch.randint(0, noise_sched.config.num_train_timesteps, (n,), generator=gen)
    xt = noise_sched.add_noise(x0, noise, t)
    states = _encode_text(pipe, texts)
    weights = torch.tensor([tc.prior_small_weight if prior_scenes[i].size == "small" else 1.0 for i in pidx])
    if tc.prior_target == "base":
        target = pipe.unet(xt, t, encoder_hidden_states=states, cross_attention_kwargs={"scale": 0.0}).sample
    else:
        target = noise_sched.get_velocity(x0, noise, t)
    batches = (xt, t, states, target, weights)
    return [tuple(a.split(tc.batch_size)[k] for a in batches) for k in range(PRIOR_CHUNK)]


def train(
    pipe: Any,
    word: str,
    latents: torch.Tensor,
    captions: list[str],
    tc: TrainConfig,
    on_step: Callable[[int, TrainLog], None],
) -> tuple[Taught, TrainLog]:
    """Add the word and the LoRA to `pipe` (a base_copy) and train them on (latents, captions)."""
    torch.manual_seed(tc.seed)
    rng = random.Random(tc.seed)
    gen = torch.Generator(device="cpu").manual_seed(tc.seed)
    token_id = add_word(pipe, word)
    n_lora = add_lora(pipe, tc.rank)
    pipe.text_encoder.requires_grad_(False)
    table = pipe.text_encoder.get_input_embeddings().weight
    table.requires_grad_(True)
    only_new_row = torch.zeros_like(table[:, :1])  # (vocab, 1): the other rows get no gradient, so never move
    only_new_row[token_id] = 1.0
    table.register_hook(lambda grad: grad * only_new_row)
    lora_params = [p for p in pipe.unet.parameters() if p.requires_grad]
    groups: list[dict[str, Any]] = [
        {"params": lora_params},
        {"params": [table], "lr": tc.embedding_learning_rate or tc.learning_rate},
    ]
    opt = torch.optim.AdamW(groups, lr=tc.learning_rate, weight_decay=0.0)
    noise_sched = DDIMScheduler.from_config(pipe.scheduler.config)  # the base model's noise schedule
    n_pool = min(tc.prior_pool, tc.batch_size * tc.steps) if tc.prior_weight > 0 else 0  # no more than drawn
    prior_latents, prior_scenes = _prior_pool(pipe.vae, n_pool, rng)
    n_t = noise_sched.config.num_train_timesteps
    log = TrainLog()
    trained = [*lora_params, table]
    ema = EMAModel(trained, decay=tc.ema_decay, foreach=True) if tc.ema_decay else None
    t0 = time.perf_counter()
    pipe.unet.train()
    prior_queue: list[tuple[torch.Tensor, ...]] = []
    for step in range(1, tc.steps + 1):
        # 1. a batch of taught images, always captioned with the word: an empty caption would teach the
        # unconditional prediction the new shape, and classifier-free guidance (cond - uncond) would cancel it
        idx = [rng.randrange(len(captions)) for _ in range(tc.batch_size)]
        x0 = latents[idx]  # (B, 4, 16, 16)
        # 2. noise them at random timesteps; the target is the velocity v = sqrt(a) eps - sqrt(1 - a) x0
        noise = torch.randn(x0.shape, generator=gen)
        t = torch.randint(0, n_t, (x0.shape[0],), generator=gen)
        xt = noise_sched.add_noise(x0, noise, t)
        target = noise_sched.get_velocity(x0, noise, t)
        states = _encode_text(pipe, [captions[i] for i in idx])  # (B, T, hidden), through the new row
        n_prior = tc.batch_size if tc.prior_weight > 0 else 0
        if n_prior:
            # as many old-world scenes (prior preservation); their captions never hold the new word, so their
            # noised latents, text states and targets are prepared PRIOR_CHUNK steps at a time, in one batch
            if not prior_queue:
                prior_queue = _prior_batches(pipe, noise_sched, prior_latents, prior_scenes, tc, rng, gen)
            pxt, pt, pstates, ptarget, pweight = prior_queue.pop()
            xt, t = torch.cat([xt, pxt]), torch.cat([t, pt])
            states, target = torch.cat([states, pstates]), torch.cat([target, ptarget])
        # 3. predict, compare, step (the LoRA pairs and the one embedding row)
        pred = pipe.unet(xt, t, encoder_hidden_states=states).sample
        per_image = F.mse_loss(pred, target, reduction="none").mean(dim=(1, 2, 3))  # (2B,)
        loss = per_image[: tc.batch_size].mean()
        prior = (per_image[tc.batch_size :] * pweight).mean() if n_prior else torch.zeros(())
        opt.zero_grad(set_to_none=True)
        (loss + tc.prior_weight * prior).backward()
        torch.nn.utils.clip_grad_norm_(trained, tc.max_grad_norm)
        opt.step()
        if ema is not None:
            ema.step(trained)
        log.steps.append(step)
        log.loss.append(loss.item())
        log.prior_loss.append(prior.item())
        log.seconds = time.perf_counter() - t0
        on_step(step, log)  # progress, partial result and the cancellation check
        if log.seconds > tc.time_budget_s and step < tc.steps:
            log.stopped_by_time = True
            break
    pipe.unet.eval()
    if ema is not None:
        ema.copy_to(trained)  # the averaged LoRA pairs and embedding row replace the last step's
    table.requires_grad_(False)
    table._backward_hooks.clear()  # type: ignore[union-attr]  # the mask hook is for training only
    return Taught(pipe=pipe, word=word, token_id=token_id, rank=tc.rank, lora_parameters=n_lora), log


def save(taught: Taught, folder: Path) -> tuple[Path, Path]:
    """The LoRA in diffusers' format (safetensors, `load_lora_weights(folder)`) and the word's embedding in
    diffusers' textual-inversion format (`load_textual_inversion(file, token=word)`)."""
    unet_lora = convert_state_dict_to_diffusers(get_peft_model_state_dict(taught.pipe.unet))
    StableDiffusionPipeline.save_lora_weights(folder, unet_lora_layers=unet_lora, safe_serialization=True)
    row = taught.pipe.text_encoder.get_input_embeddings().weight[taught.token_id].detach().clone()
    save_file({taught.word: row.float().contiguous()}, str(folder / EMBEDDING_FILE))
    return folder / LORA_FILE, folder / EMBEDDING_FILE


def load(cached: Any, folder: Path, word: str) -> Any:
    """A fresh copy of the base pipeline with a saved word + LoRA loaded by diffusers' own loaders."""
    pipe = base_copy(cached)
    pipe.load_lora_weights(str(folder), weight_name=LORA_FILE, adapter_name="taught")
    pipe.load_textual_inversion(str(folder / EMBEDDING_FILE), token=word)
    return pipe
