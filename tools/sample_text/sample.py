"""sample_text as steps: find and check the model, load it, sample token by token, draw the first steps."""

from __future__ import annotations

import io
import json
import math
import threading
from collections import OrderedDict
from pathlib import Path

import torch
from matplotlib.figure import Figure
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer
from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES
from transformers.utils import logging as transformers_logging

from tools.common import InlineImage, InvalidArgument, Reporter, ToolOutput
from tools.config import LabConfig
from tools.fonts import plot_char, use_cjk_in_matplotlib
from tools.paths import new_output_path, output_uri
from tools.sample_text.schema import Choice, GeneratedToken, SampleTextInput, SampleTextResult
from tools.tiny_gpt import store
from tools.tiny_gpt.corpus import resolve_dir
from tools.tiny_gpt.sampling import generate

transformers_logging.disable_progress_bar()  # the "Loading weights" / "Writing model shards" bars on every load / save


def find_model(args: SampleTextInput, cfg: LabConfig) -> tuple[Path, str, str]:
    """(folder, argument, description): a run folder or a local causal-LM folder whose config we can read."""
    if (args.run_id is None) == (args.model_path is None):
        raise InvalidArgument(
            "run_id", args.run_id, "give exactly one of run_id (a train_tiny_gpt run) or model_path"
        )
    if args.run_id is not None:
        return store.run_dir(cfg, args.run_id), "run_id", f"run {args.run_id}"
    assert args.model_path is not None
    folder = resolve_dir(args.model_path, cfg, "model_path")
    assert folder is not None
    return folder, "model_path", str(folder)


# Loaded models, newest last, keyed by folder and the size and time of every file in it: the view's temperature
# control and a learner's "again, hotter" re-run sample_text on the same model, and loading it anew each call
# (config check, meta-device count, from_pretrained, tokenizer) cost time and, measured over 350 calls in one
# process, ~80 KB of native memory per call that was never returned. Small models only: a cached 30M-parameter
# model would hold 120 MB.
_CACHE: OrderedDict[tuple, tuple] = OrderedDict()
_CACHE_LOCK = threading.Lock()
CACHE_ENTRIES = 2
CACHE_MAX_PARAMETERS = 5_000_000


def _fingerprint(folder: Path) -> tuple:
    files = ((f.name, f.stat()) for f in sorted(folder.iterdir()) if f.is_file())
    return (str(folder.resolve()), *((name, st.st_mtime_ns, st.st_size) for name, st in files))


def load(folder: Path, argument: str, value: str, cfg: LabConfig):
    """The model, its tokenizer and config: from the cache when the folder is unchanged, else checked and loaded."""
    key = (_fingerprint(folder), cfg.limits.gpt_max_parameters)
    with _CACHE_LOCK:
        if key in _CACHE:
            _CACHE.move_to_end(key)
            return _CACHE[key]
    loaded = _load(folder, argument, value, cfg)
    if loaded[0].num_parameters() <= CACHE_MAX_PARAMETERS:
        with _CACHE_LOCK:
            _CACHE[key] = loaded
            while len(_CACHE) > CACHE_ENTRIES:
                _CACHE.popitem(last=False)
    return loaded


def _load(folder: Path, argument: str, value: str, cfg: LabConfig):
    """Check the config names a causal LM of allowed size before loading any weight, then load offline."""

    if not (folder / "config.json").is_file():
        raise InvalidArgument(argument, value, "has no config.json: not a transformers model folder")
    try:
        config = AutoConfig.from_pretrained(folder, local_files_only=True)
    except (OSError, ValueError, json.JSONDecodeError) as exc:
        raise InvalidArgument(argument, value, f"config.json cannot be read ({exc})") from None
    if config.model_type not in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES:
        raise InvalidArgument(
            argument, value, f"is a '{config.model_type}' model, not a causal (next-token) language model"
        )
    with torch.device("meta"):  # count parameters without allocating them
        n_params = sum(p.numel() for p in AutoModelForCausalLM.from_config(config).parameters())
    if n_params > cfg.limits.gpt_max_parameters:
        raise InvalidArgument(
            argument,
            value,
            f"has {n_params} parameters; at most {cfg.limits.gpt_max_parameters} (gpt_max_parameters)",
        )
    try:
        model = AutoModelForCausalLM.from_pretrained(folder, local_files_only=True)
        tok = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    except (OSError, ValueError) as exc:
        raise InvalidArgument(argument, value, f"cannot be loaded with its tokenizer ({exc})") from None
    return model.eval(), tok, config


def sample_text(args: SampleTextInput, cfg: LabConfig, reporter: Reporter) -> ToolOutput:
    # 1. the model
    folder, argument, what = find_model(args, cfg)
    model, tok, config = load(folder, argument, args.run_id or args.model_path or "", cfg)
    block: int = (
        getattr(config, "n_positions", None) or getattr(config, "max_position_embeddings", None) or 1024
    )
    prompt_ids = tok(args.prompt, add_special_tokens=False)["input_ids"]
    if not prompt_ids:
        raise InvalidArgument("prompt", args.prompt, "encodes to no tokens with this model's tokenizer")

    # 2. sample, token by token
    reporter.progress(0, args.max_new_tokens, "sampling")
    gen = torch.Generator().manual_seed(args.seed)
    eos = (
        tok.eos_token_id if args.model_path is not None else None
    )  # our runs use <|endoftext|> as a separator
    steps = generate(
        model,
        prompt_ids,
        args.max_new_tokens,
        block,
        gen,
        args.temperature,
        args.top_k,
        args.top_p,
        eos,
        check=reporter.check_cancelled,
    )

    def text_of(i: int) -> str:
        return tok.decode([i])

    tokens = [
        GeneratedToken(
            token=text_of(s.token_id),
            id=s.token_id,
            probability=round(s.probability, 5),
            model_probability=round(s.model_probability, 5),
            alternatives=[
                Choice(token=text_of(i), probability=round(p, 5))
                for i, p in zip(s.top_ids, s.top_probs, strict=True)
            ],
        )
        for s in steps
    ]
    text = tok.decode([s.token_id for s in steps])

    # 3. the picture
    png = draw_steps(tokens[: args.show_steps], args.temperature)
    picture = new_output_path(cfg, "plots", ".png")
    picture.write_bytes(png)
    result = SampleTextResult(
        model=what,
        prompt=args.prompt,
        text=text,
        tokens=tokens,
        mean_log_probability=sum(math.log(max(t.model_probability, 1e-12)) for t in tokens) / len(tokens),
        settings={
            "temperature": args.temperature,
            "top_k": args.top_k,
            "top_p": args.top_p,
            "seed": args.seed,
            "max_new_tokens": args.max_new_tokens,
        },  # fmt: skip
        picture_path=str(picture),
        picture_uri=output_uri(cfg, picture),
    )
    first = ", ".join(f"{t.token!r} p={t.probability:.2f}" for t in tokens[:8])
    summary = (
        f"{what}, temperature {args.temperature}: {args.prompt!r} -> {text!r}\nFirst tokens: {first}\n"
        f"Mean log model-probability {result.mean_log_probability:.2f}."
    )
    return ToolOutput(result=result, images=[InlineImage(png, "first steps")], summary=summary)


def draw_steps(tokens: list[GeneratedToken], temperature: float) -> bytes:
    """One bar chart per step: the top-5 candidates' probabilities, the chosen one in orange."""

    use_cjk_in_matplotlib()  # tokens in Chinese

    n = len(tokens)
    fig = Figure(figsize=(min(2.2 * n, 12), 2.8), layout="constrained")
    axes = fig.subplots(1, n, squeeze=False)[0]
    for k, (ax, t) in enumerate(zip(axes, tokens, strict=True)):
        labels = [_label(c.token) for c in t.alternatives]
        colours = ["#f59322" if c.token == t.token else "#0877bd" for c in t.alternatives]
        ax.bar(range(len(labels)), [c.probability for c in t.alternatives], color=colours)
        ax.set_xticks(range(len(labels)), labels, fontsize=8)
        ax.set_ylim(0, 1)
        ax.set_title(f"step {k + 1}: {_label(t.token)!r}", fontsize=9)
    fig.suptitle(f"next-token probabilities at temperature {temperature} (orange = sampled)", fontsize=9)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    return buf.getvalue()


def _label(t: str) -> str:
    t = t.replace("\n", "↵").replace(" ", "␣")
    return "".join(plot_char(ch) for ch in t)[:8] or "∅"
