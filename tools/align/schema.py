"""Arguments and results of finetune_gpt and compare_gpt_stages (pydantic only: importing loads no torch)."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from tools.common import ToolInput

Method = Literal["sft", "dpo", "grpo"]
BUILTIN_BASE = "builtin"
Text = Field(min_length=1, max_length=2000)


class SftPair(BaseModel):
    """A prompt and the response the model should learn to give."""

    model_config = ConfigDict(extra="forbid")
    prompt: str = Field(max_length=2000, description="What the model sees (not trained on).")
    response: str = Field(
        max_length=2000, description="What it should answer (trained on, with a newline appended)."
    )


class DpoTriple(BaseModel):
    """A prompt with a preferred (chosen) and a dispreferred (rejected) response."""

    model_config = ConfigDict(extra="forbid")
    prompt: str = Field(max_length=2000, description="What the model sees.")
    chosen: str = Field(max_length=2000, description="The better response.")
    rejected: str = Field(max_length=2000, description="The worse response; must differ from chosen.")


class GrpoPrompt(BaseModel):
    """A prompt for GRPO, with the reference answer that the exact_answer reward compares with (optional)."""

    model_config = ConfigDict(extra="forbid")
    prompt: str = Field(max_length=2000, description="What the model sees and continues.")
    answer: str | None = Field(
        None, max_length=2000, description="Reference answer for the exact_answer reward."
    )


class RewardRule(BaseModel):
    """One rule reward, scored in [0, 1] per completion and multiplied by its weight."""

    model_config = ConfigDict(extra="forbid")
    kind: Literal["exact_answer", "format", "length", "contains", "avoids", "regex"] = Field(
        description="exact_answer: equals the reference answer; format: built-in task = one number then a newline, "
        "own data = the completion ended by itself; length: 1 - |chars - target| / target (floored at 0); "
        "contains / avoids: a word is / is not in the completion; regex: the pattern is found (Python re.search)."
    )
    weight: float = Field(1.0, ge=-10.0, le=10.0, allow_inf_nan=False, description="Multiplier; not 0.")
    target: int | None = Field(
        None, ge=1, le=512, description="length only: the target length in characters."
    )
    word: str | None = Field(
        None, min_length=1, max_length=100, description="contains / avoids only: the word."
    )
    pattern: str | None = Field(
        None, min_length=1, max_length=200, description="regex only: a Python regular expression."
    )

    @model_validator(mode="after")
    def _fields_match_kind(self) -> RewardRule:
        need = {"length": "target", "contains": "word", "avoids": "word", "regex": "pattern"}.get(self.kind)
        for name in ("target", "word", "pattern"):
            given = getattr(self, name) is not None
            if name == need and not given:
                raise ValueError(f"a {self.kind} reward needs `{name}`")
            if name != need and given:
                raise ValueError(f"`{name}` belongs to another kind of reward, not {self.kind}")
        if self.weight == 0:
            raise ValueError("weight 0 makes the rule do nothing; remove it or give a non-zero weight")
        if self.pattern is not None:
            try:
                re.compile(self.pattern)
            except re.error as exc:
                raise ValueError(
                    f"pattern {self.pattern!r} is not a valid regular expression: {exc}"
                ) from None
        return self


class FinetuneGptInput(ToolInput):
    """Fine-tune a tiny GPT with SFT, DPO or GRPO, on the built-in addition task or your own data."""

    model_config = ConfigDict(extra="forbid")

    method: Method = Field(
        "sft",
        description="sft: learn responses (prompt tokens masked); dpo: prefer chosen over rejected against a frozen "
        "reference; grpo: sample a group of completions per prompt, reward them, reinforce the above-average ones.",
    )
    base_run: str = Field(
        BUILTIN_BASE,
        min_length=1,
        max_length=500,
        description="The model to start from: 'builtin' (a tiny GPT pre-trained by the project on bare equations "
        "like 23+58=81), a run id of train_tiny_gpt or finetune_gpt, or a model folder under the allowed folders.",
    )
    reference_run: str | None = Field(
        None,
        min_length=1,
        max_length=500,
        description="dpo / grpo: the frozen reference model (default: base_run). Must share base_run's tokenizer.",
    )
    task: Literal["addition", "custom"] = Field(
        "addition",
        description="addition: the built-in task 'Q: 23+58= A: 81' (data generated, answers checkable); custom: "
        "your own pairs (sft), triples (dpo) or prompts (grpo).",
    )
    pairs: list[SftPair] | None = Field(
        None, max_length=5000, description="task='custom', method='sft': the pairs."
    )
    triples: list[DpoTriple] | None = Field(
        None, max_length=5000, description="task='custom', method='dpo': prompt / chosen / rejected."
    )
    prompts: list[GrpoPrompt] | None = Field(
        None,
        max_length=5000,
        description="task='custom', method='grpo': prompts (with answers for exact_answer).",
    )
    rewards: list[RewardRule] | None = Field(
        None,
        min_length=1,
        max_length=8,
        description="grpo (and the reward column of every stage): rules summed with their weights. Default for "
        "addition: exact_answer 1.0 + format 0.2; for custom prompts: format 1.0.",
    )
    steps: int | None = Field(
        None,
        ge=1,
        le=5000,
        description="Optimizer steps (grpo: batches; each gets `updates_per_batch` steps). Default sft 500, dpo 100, grpo 30.",
    )
    batch_size: int | None = Field(
        None,
        ge=1,
        le=256,
        description="Examples per step (grpo: prompts per batch). Default sft 64, dpo 32, grpo 16.",
    )
    learning_rate: float | None = Field(
        None,
        gt=0.0,
        le=0.1,
        allow_inf_nan=False,
        description="AdamW step size. Default sft 3e-3, dpo 2e-4, grpo 1e-4.",
    )
    beta: float | None = Field(
        None,
        ge=0.0,
        le=10.0,
        allow_inf_nan=False,
        description="dpo: temperature of the implicit reward (default 0.1); grpo: weight of the KL penalty to the "
        "reference (default 0.04).",
    )
    sft_weight: float = Field(
        1.0,
        ge=0.0,
        le=10.0,
        allow_inf_nan=False,
        description="dpo: weight of the SFT loss on the chosen answers added to the DPO loss (RPO; TRL's "
        "loss_type=['sigmoid', 'sft']). 0 = pure DPO, which can raise the margin by pushing both answers down: on "
        "the built-in task it cost 30 points of exact accuracy.",
    )
    group_size: int = Field(8, ge=1, le=64, description="grpo: completions sampled per prompt (at least 2).")
    updates_per_batch: int = Field(2, ge=1, le=8, description="grpo: optimizer steps on each sampled batch.")
    clip_epsilon: float = Field(
        0.2,
        gt=0.0,
        le=1.0,
        allow_inf_nan=False,
        description="grpo: the probability ratio is clipped to 1 +- this.",
    )
    temperature: float = Field(
        1.0, gt=0.0, le=3.0, allow_inf_nan=False, description="grpo: sampling temperature."
    )
    max_new_tokens: int = Field(
        8, ge=1, le=256, description="Longest completion, in tokens (grpo and evaluation)."
    )
    n_train: int = Field(2000, ge=10, le=20000, description="task='addition': training problems generated.")
    n_eval: int = Field(
        200, ge=10, le=2000, description="Held-out problems (or your own items) evaluated before and after."
    )
    seed: int = Field(0, ge=0, le=2**31 - 1, description="Seeds data, batches and sampling.")
    time_budget_s: float | None = Field(
        None,
        gt=0.0,
        le=3600.0,
        allow_inf_nan=False,
        description="Training stops here (default 20 s, at most 55 s inline).",
    )

    @field_validator("group_size")
    @classmethod
    def _group_of_two(cls, v: int) -> int:
        if v < 2:
            raise ValueError(
                "group_size must be at least 2: GRPO's advantage is a completion's reward minus its group's mean, "
                "so a group of 1 always has advantage 0 and nothing is learned"
            )
        return v

    @model_validator(mode="after")
    def _data_matches_method(self) -> FinetuneGptInput:
        wanted = {"sft": "pairs", "dpo": "triples", "grpo": "prompts"}[self.method]
        for name in ("pairs", "triples", "prompts"):
            given = getattr(self, name) is not None
            if given and (self.task != "custom" or name != wanted):
                raise ValueError(
                    f"`{name}` is the data of task='custom' with method='{ {'pairs': 'sft', 'triples': 'dpo', 'prompts': 'grpo'}[name] }'"
                )
        if self.task == "custom" and getattr(self, wanted) is None:
            raise ValueError(f"task='custom' with method='{self.method}' needs `{wanted}`")
        if self.triples is not None:
            for i, t in enumerate(self.triples):
                if t.chosen == t.rejected:
                    raise ValueError(
                        f"triples[{i}]: chosen and rejected are identical ({t.chosen!r}); DPO learns "
                        "only from a difference"
                    )
        return self


class EvalMetrics(BaseModel):
    accuracy: float | None = Field(
        description="Share of eval prompts answered exactly (greedy); null without answers."
    )
    mean_reward: float = Field(description="Mean reward of the greedy completions under the reward rules.")
    format_rate: float = Field(
        description="Share of completions that follow the format (see the format reward)."
    )
    mean_length: float = Field(description="Mean completion length in characters.")
    preference_accuracy: float | None = Field(
        None,
        description="dpo: share of eval triples where the model gives chosen a higher log-probability than rejected.",
    )


class Sample(BaseModel):
    prompt: str = Field(description="The prompt.")
    answer: str | None = Field(description="The reference answer, if any.")
    before: str = Field(description="The starting model's greedy completion.")
    after: str = Field(description="The fine-tuned model's greedy completion.")


class StepRecord(BaseModel):
    step: int = Field(description="Optimizer step (grpo: batch).")
    loss: float = Field(description="Training loss of the step.")
    reward_mean: float | None = Field(None, description="grpo: mean reward of the sampled completions.")
    reward_max: float | None = Field(None, description="grpo: best reward in the batch.")
    kl: float | None = Field(None, description="grpo: mean per-token KL to the reference (k3 estimator).")
    completion_length: float | None = Field(None, description="grpo: mean completion length, tokens.")
    signal_share: float | None = Field(
        None, description="grpo: share of groups whose rewards differ (not all equal)."
    )
    margin: float | None = Field(None, description="dpo: mean implicit reward margin, chosen minus rejected.")
    reward_accuracy: float | None = Field(
        None, description="dpo: share of the batch with chosen reward > rejected."
    )
    chosen_reward: float | None = Field(None, description="dpo: mean beta * log(pi/ref) of chosen.")
    rejected_reward: float | None = Field(None, description="dpo: mean beta * log(pi/ref) of rejected.")
    chosen_nll: float | None = Field(
        None, description="dpo: mean negative log-likelihood per chosen token (falls if chosen is pushed up)."
    )


class FinetuneGptResult(BaseModel):
    run_id: str = Field(
        description="The new stage: use it as base_run, in compare_gpt_stages and in sample_text."
    )
    method: Method = Field(description="How it was trained.")
    base_run: str = Field(description="The model it started from.")
    reference_run: str | None = Field(description="dpo / grpo: the frozen reference.")
    task: str = Field(description="addition or custom.")
    settings: dict[str, float | int | str] = Field(
        description="Effective steps, learning rate, beta, group size..."
    )
    rewards: list[str] = Field(description="The reward rules with their weights.")
    before: EvalMetrics = Field(description="The starting model on the eval set.")
    after: EvalMetrics = Field(description="The fine-tuned model on the same eval set.")
    history: list[StepRecord] = Field(description="Per-step figures (at most about 200 rows).")
    samples: list[Sample] = Field(description="A few eval prompts before and after.")
    steps_run: int = Field(description="Steps completed.")
    stop_reason: Literal["completed", "time_budget"] = Field(description="Why training ended.")
    wall_time_s: float = Field(description="Training time, seconds (evaluation not included).")
    folder: str = Field(description="The saved transformers folder (AutoModelForCausalLM / AutoTokenizer).")
    picture_path: str = Field(description="Saved picture: training curves and before/after.")
    picture_uri: str = Field(description="The picture as an mllab://outputs/ resource.")
    run_uri: str = Field(description="This stage's record as a resource.")


class CompareGptStagesInput(ToolInput):
    """Run the same held-out prompts through several stages and show accuracy, reward and answers side by side."""

    model_config = ConfigDict(extra="forbid")
    runs: list[str] = Field(
        min_length=1,
        max_length=6,
        description="Stages to compare, e.g. ['builtin', '<sft run>', '<dpo run>', '<grpo run>']. One finetune_gpt "
        "run alone expands to its whole lineage (base, then each stage it was trained from).",
    )
    task: Literal["addition", "custom"] = Field(
        "addition", description="addition: held-out problems; custom: `prompts`."
    )
    prompts: list[GrpoPrompt] | None = Field(None, max_length=2000, description="task='custom': the prompts.")
    rewards: list[RewardRule] | None = Field(
        None, min_length=1, max_length=8, description="As in finetune_gpt."
    )
    n_eval: int = Field(200, ge=1, le=2000, description="task='addition': held-out problems.")
    n_examples: int = Field(6, ge=1, le=12, description="Answers shown side by side.")
    max_new_tokens: int = Field(8, ge=1, le=256, description="Longest completion, in tokens (greedy).")
    seed: int = Field(0, ge=0, le=2**31 - 1, description="Seeds the problems drawn.")

    @model_validator(mode="after")
    def _custom_has_prompts(self) -> CompareGptStagesInput:
        if (self.task == "custom") != (self.prompts is not None):
            raise ValueError("`prompts` is given exactly when task='custom'")
        return self


class StageRow(BaseModel):
    run: str = Field(description="The stage's run id (or 'builtin').")
    method: str = Field(description="base, sft, dpo or grpo.")
    metrics: EvalMetrics = Field(description="The stage on the shared prompts.")


class CompareGptStagesResult(BaseModel):
    stages: list[StageRow] = Field(description="One row per stage, in order.")
    examples: list[dict[str, str | None]] = Field(description="Prompt, answer and each stage's completion.")
    rewards: list[str] = Field(description="The reward rules used.")
    table_markdown: str = Field(description="The comparison as a Markdown table.")
    picture_path: str = Field(description="Saved picture: bars per stage and the answers side by side.")
    picture_uri: str = Field(description="The picture as an mllab://outputs/ resource.")
