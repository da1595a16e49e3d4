"""finetune_gpt and compare_gpt_stages (tools layer): refusals naming the argument, learning on the built-in
task from the shipped base, reproducibility, saved transformers folders, cancellation."""

from __future__ import annotations

import json

import pytest
import torch
from pydantic import ValidationError
from transformers import AutoModelForCausalLM, AutoTokenizer

from tools.align import CompareGptStagesInput, FinetuneGptInput, run, run_compare, tasks
from tools.align.policy import char_tokenizer, save, tiny_gpt
from tools.common import Cancelled, InvalidArgument, NullReporter
from tools.config import LabConfig


@pytest.fixture(scope="module")
def cfg(tmp_path_factory):
    root = tmp_path_factory.mktemp("align")
    return LabConfig.create(root / "out", [root])


def tune(cfg, **kw):
    return run(FinetuneGptInput(**kw), cfg, NullReporter())


@pytest.fixture(scope="module")
def short_sft(cfg):
    """A 5-step SFT stage: enough for the files, the lineage and the comparison."""
    return tune(cfg, method="sft", steps=5, n_eval=50, seed=0).result


@pytest.fixture(scope="module")
def sft(cfg):
    """A real SFT stage from the shipped base with the default 500 steps (about 20 s on 2 cores), shared by the
    learning tests. 150 steps at a constant rate reached 24% on one machine and 7% on another (same code, same
    torch: rounding decides when the model relearns addition after "Q: "), so the test uses the default."""
    return tune(cfg, method="sft", n_eval=100, seed=0, time_budget_s=55).result


# ---- refusals: each names the argument


def _msg(exc_info) -> str:
    return str(exc_info.value)


def test_group_size_1_is_refused_with_the_reason():
    with pytest.raises(ValidationError, match="group_size") as e:
        FinetuneGptInput(method="grpo", group_size=1)
    assert "advantage" in _msg(e)


def test_dpo_triple_with_identical_chosen_and_rejected_is_refused():
    with pytest.raises(ValidationError, match=r"triples\[1\]: chosen and rejected are identical"):
        FinetuneGptInput(method="dpo", task="custom", triples=[
            {"prompt": "Q: 1+1= A:", "chosen": " 2", "rejected": " 3"},
            {"prompt": "Q: 2+2= A:", "chosen": " 4", "rejected": " 4"},
        ])  # fmt: skip


def test_custom_data_must_match_the_method():
    with pytest.raises(ValidationError, match="needs `pairs`"):
        FinetuneGptInput(method="sft", task="custom")
    with pytest.raises(ValidationError, match="`triples` is the data of task='custom' with method='dpo'"):
        FinetuneGptInput(method="sft", task="custom", pairs=[{"prompt": "a", "response": "b"}],
                         triples=[{"prompt": "a", "chosen": "b", "rejected": "c"}])  # fmt: skip


def test_reward_rule_fields_must_match_its_kind():
    with pytest.raises(ValidationError, match="needs `target`"):
        FinetuneGptInput(method="grpo", rewards=[{"kind": "length"}])
    with pytest.raises(ValidationError, match="not a valid regular expression"):
        FinetuneGptInput(method="grpo", rewards=[{"kind": "regex", "pattern": "(("}])
    with pytest.raises(ValidationError, match="weight 0"):
        FinetuneGptInput(method="grpo", rewards=[{"kind": "format", "weight": 0}])


def test_empty_prompt_is_refused_naming_the_pair(cfg):
    with pytest.raises(InvalidArgument, match=r"`pairs\[1\].prompt`.*must not be empty"):
        tune(
            cfg,
            task="custom",
            pairs=[{"prompt": "Q: 1+1= A:", "response": " 2"}, {"prompt": " ", "response": "x"}],
        )


def test_prompt_longer_than_the_context_is_refused(cfg):
    with pytest.raises(InvalidArgument, match=r"`pairs\[0\].prompt`.*context holds 24"):
        tune(cfg, task="custom", pairs=[{"prompt": "Q: " + "1+" * 20 + "1= A:", "response": " 21"}])


def test_characters_the_tokenizer_lacks_are_refused(cfg):
    with pytest.raises(InvalidArgument, match=r"`pairs\[0\].response`.*\['é'\]"):
        tune(cfg, task="custom", pairs=[{"prompt": "Q: cafe A:", "response": " café"}])


@pytest.mark.parametrize(
    ("rule", "where", "why"),
    [
        ({"kind": "contains", "word": "Zebra"}, r"rewards\[0\].word", "no token of the model produces"),
        ({"kind": "length", "target": 40}, r"rewards\[0\].target", "at most 8 characters"),
        ({"kind": "regex", "pattern": ".*"}, r"rewards\[0\].pattern", "matches every text"),
    ],
)
def test_a_reward_that_can_never_fire_is_refused(cfg, rule, where, why):
    with pytest.raises(InvalidArgument, match=f"`{where}`.*{why}"):
        tune(cfg, method="grpo", rewards=[rule], steps=1)


def test_exact_answer_without_answers_is_refused(cfg):
    with pytest.raises(InvalidArgument, match=r"`rewards\[0\]`.*needs an `answer`"):
        tune(cfg, method="grpo", task="custom", prompts=[{"prompt": "Q: hi A:"}],
             rewards=[{"kind": "exact_answer"}])  # fmt: skip


def test_reference_with_another_tokenizer_is_refused(cfg, tmp_path_factory):
    folder = tmp_path_factory.mktemp("other") / "abc_model"
    tok = char_tokenizer("abc \n")
    save(tiny_gpt(len(tok.get_vocab()), n_layer=1, n_embd=16, n_positions=24), tok, folder)
    root_cfg = LabConfig.create(cfg.output_dir, [*cfg.allowed_dirs, folder.parent])
    with pytest.raises(InvalidArgument, match="`reference_run`.*another tokenizer"):
        tune(root_cfg, method="dpo", reference_run=str(folder), steps=1)
    with pytest.raises(InvalidArgument, match=r"`runs\[1\]`.*another tokenizer"):
        run_compare(CompareGptStagesInput(runs=["builtin", str(folder)]), root_cfg, NullReporter())


def test_unknown_run_and_folders_outside_the_allowed_ones_are_refused(cfg, tmp_path_factory):
    with pytest.raises(InvalidArgument, match="`base_run`.*no saved run"):
        tune(cfg, base_run="20990101-000000-0123456789")
    outside = tmp_path_factory.mktemp("outside")
    (outside / "config.json").write_text("{}")
    with pytest.raises(InvalidArgument, match="`base_run`.*outside the allowed folders"):
        tune(cfg, base_run=str(outside))
    with pytest.raises(InvalidArgument, match="`base_run`.*no such file"):
        tune(cfg, base_run=str(cfg.output_dir / "nothing"))


# ---- learning on the built-in task, from the shipped pre-trained base


@pytest.mark.slow
def test_sft_raises_exact_answer_accuracy_well_above_the_base(sft):
    assert sft.before.accuracy <= 0.05  # the base never saw "Q: ... A:"
    assert sft.after.accuracy >= sft.before.accuracy + 0.2, (sft.before, sft.after)
    assert sft.after.format_rate >= 0.9


def test_dpo_raises_preference_accuracy(cfg):
    out = tune(cfg, method="dpo", steps=30, n_eval=100).result
    assert out.after.preference_accuracy > out.before.preference_accuracy, (out.before, out.after)
    assert out.history[-1].margin > 0 and out.history[-1].chosen_reward > out.history[-1].rejected_reward


@pytest.mark.slow
def test_dpo_from_the_sft_model_raises_preference_accuracy_and_keeps_exact_accuracy(cfg, sft):
    out = tune(cfg, method="dpo", base_run=sft.run_id, n_eval=200, time_budget_s=55).result
    assert out.after.preference_accuracy > out.before.preference_accuracy, (out.before, out.after)
    assert out.after.accuracy >= out.before.accuracy - 0.02, (out.before, out.after)


def test_near_misses_are_wrong_non_negative_and_include_the_forgotten_carry():
    assert tasks.near_misses(58, 23) == [71, 80, 82, 91]  # 81 -10 (= the forgotten carry), -1, +1, +10
    assert tasks.near_misses(99, 99) == [88, 188, 197, 199, 208]  # two forgotten carries: 88
    assert tasks.near_misses(0, 0) == [1, 10]
    for p, c, r in tasks.preference_triples(200, 1, "train"):
        a, b = (int(x) for x in p[3:-4].split("+"))
        assert c == f" {a + b}" and int(r) in tasks.near_misses(a, b)


@pytest.mark.slow
def test_grpo_raises_mean_reward_over_the_sft_model_with_bounded_kl(cfg, sft):
    # the default 30 batches: 15 gained 0.01 on one SFT seed and lost 0.01 on another; 30 gained 0.01-0.08 on 4
    out = tune(cfg, method="grpo", base_run=sft.run_id, n_eval=200, time_budget_s=55).result
    assert out.after.mean_reward > out.before.mean_reward, (out.before, out.after)
    assert max(h.kl for h in out.history) < 0.5
    assert all(0.0 <= h.signal_share <= 1.0 and h.reward_max >= h.reward_mean for h in out.history)


# ---- the saved stage and the comparison


def test_a_stage_is_a_standard_transformers_folder_with_its_record(cfg, short_sft):
    sft = short_sft
    model = AutoModelForCausalLM.from_pretrained(sft.folder)
    tok = AutoTokenizer.from_pretrained(sft.folder)
    ids = tok("Q: 12+30= A:", return_tensors="pt").input_ids
    assert model(ids).logits.shape == (1, ids.shape[1], len(tok.get_vocab()))
    record = json.loads((cfg.output_dir / "gpt_runs" / sft.run_id / "run.json").read_text())
    assert record["result"]["method"] == "sft" and record["arguments"]["steps"] == 5


def test_same_seed_same_numbers(cfg):
    a = tune(cfg, method="sft", steps=5, n_eval=20, seed=4).result
    b = tune(cfg, method="sft", steps=5, n_eval=20, seed=4).result
    assert [h.loss for h in a.history] == [h.loss for h in b.history]
    assert a.after == b.after and a.run_id != b.run_id


def test_compare_expands_a_runs_lineage_and_agrees_with_the_stage_figures(cfg, short_sft):
    sft = short_sft
    out = run_compare(CompareGptStagesInput(runs=[sft.run_id], n_eval=50), cfg, NullReporter()).result
    assert [r.method for r in out.stages] == ["base", "sft"]
    assert out.stages[1].metrics.accuracy == sft.after.accuracy  # same prompts, same greedy decoding
    assert out.stages[0].metrics.accuracy == sft.before.accuracy
    assert "| sft |" in out.table_markdown and len(out.examples) == 6


def test_cancellation_stops_training(cfg):
    class CancelAfter:
        calls = 0

        def progress(self, *a, **k):
            self.calls += 1
            if self.calls > 1:
                raise Cancelled()

        def check_cancelled(self):
            return None

    with pytest.raises(Cancelled):
        run(FinetuneGptInput(method="sft", steps=5000, n_eval=10), cfg, CancelAfter())


def test_one_thread_is_restored_after_a_call(cfg):
    before = torch.get_num_threads()
    tune(cfg, method="sft", steps=1, n_eval=10)
    assert torch.get_num_threads() == before


def test_sample_text_generates_from_a_stage_by_its_run_id(cfg, short_sft):
    from tools.sample_text import run as sample_run
    from tools.sample_text.schema import SampleTextInput

    out = sample_run(
        SampleTextInput(run_id=short_sft.run_id, prompt="Q: 12+30= A:", max_new_tokens=3, temperature=0.2),
        cfg,
        NullReporter(),
    ).result
    # the stage loads through train_tiny_gpt's run lookup; its tokens are the built-in base's characters
    assert 1 <= len(out.tokens) <= 3 and set(out.text) <= set(
        "0123456789+-=:?.,QA abcdefghijklmnopqrstuvwxyz\n"
    )


def test_loading_and_saving_a_stage_prints_no_progress_bars(capfd, tmp_path):
    from tools.align.policy import load
    from tools.align.store import BUILTIN_FOLDER

    model, tok = load(BUILTIN_FOLDER)
    save(model, tok, tmp_path / "copy")
    out, err = capfd.readouterr()
    assert out == "" and "Loading weights" not in err and "Writing model shards" not in err, err
