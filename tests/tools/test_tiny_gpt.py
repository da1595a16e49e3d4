"""train_tiny_gpt and sample_text against references: transformers' own loss and reload, dense bigram counts,
softmax, attention's definition; same seed same numbers; bad input named."""

from __future__ import annotations

import base64
import math

import pytest
import torch
import torch.nn.functional as F

from tools.common import InvalidArgument, NullReporter
from tools.config import LabConfig, Limits
from tools.sample_text import SampleTextInput
from tools.sample_text import run as sample
from tools.tiny_gpt import TrainTinyGptInput
from tools.tiny_gpt import run as train
from tools.tiny_gpt.corpus import builtin_corpus
from tools.tiny_gpt.lab import pack_attention
from tools.tiny_gpt.model import attention_maps, bigram_loss, build_model
from tools.tiny_gpt.sampling import sampling_distribution
from tools.tiny_gpt.train import loss_of

TEXT = builtin_corpus("names")[:6000]
TINY = dict(n_layer=1, n_head=2, n_embd=16, block_size=16, batch_size=4, max_steps=6, eval_interval=3,
            eval_iters=2, sample_tokens=8, time_budget_s=600.0)  # fmt: skip


@pytest.fixture
def cfg(tmp_path):
    return LabConfig.create(tmp_path / "out", [tmp_path])


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    cfg = LabConfig.create(tmp_path_factory.mktemp("runs"))
    return cfg, train(TrainTinyGptInput(text=TEXT, **TINY), cfg, NullReporter()).result


def test_same_seed_gives_the_same_losses_and_samples_and_another_seed_does_not(cfg, tiny_run):
    again = train(TrainTinyGptInput(text=TEXT, **TINY), cfg, NullReporter()).result
    other = train(TrainTinyGptInput(text=TEXT, seed=7, **TINY), cfg, NullReporter()).result
    first = tiny_run[1]
    assert again.history == first.history and again.samples == first.samples
    assert again.final_val_loss == first.final_val_loss
    assert other.history.val_loss != first.history.val_loss


def test_the_saved_run_reloads_through_transformers_with_the_same_loss_and_tokens(tiny_run):
    from tokenizers import Tokenizer
    from transformers import AutoModelForCausalLM, AutoTokenizer

    _, r = tiny_run
    model = AutoModelForCausalLM.from_pretrained(r.run_path).eval()
    tok = AutoTokenizer.from_pretrained(r.run_path)
    ours = Tokenizer.from_file(f"{r.run_path}/tokenizer.json")
    val = TEXT[-len(TEXT) // 10 :]
    assert tok(val)["input_ids"] == ours.encode(val).ids
    ids = torch.tensor(ours.encode(TEXT).ids)
    val_ids = ids[len(ids) - r.val_tokens :]
    n = (len(val_ids) - 1) // 16
    with torch.no_grad():  # the reloaded model's logits, scored window by window like the run did
        x = val_ids[: n * 16].view(n, 16)
        y = val_ids[1 : n * 16 + 1].view(n, 16)
        logits = model(input_ids=x).logits  # (n, T, V)
        loss = F.cross_entropy(logits.flatten(0, 1), y.flatten())
    assert r.final_val_loss == pytest.approx(float(loss), rel=1e-5)
    assert r.run_id in r.load_code


def _unpack(b64: str, L: int, nh: int, T: int) -> torch.Tensor:
    """weights_b64 read back the slow way, as its description says: layer, head, query row, keys 0..q."""
    raw = base64.b64decode(b64)
    assert len(raw) == L * nh * T * (T + 1) // 2
    out, i = torch.zeros(L, nh, T, T), 0
    for layer in range(L):
        for head in range(nh):
            for q in range(T):
                for k in range(q + 1):
                    out[layer, head, q, k] = raw[i] / 255
                    i += 1
    return out


def test_packed_attention_reads_back_as_attention_by_its_definition_within_one_byte():
    torch.manual_seed(0)
    model = build_model(40, 2, 4, 32, 16, 0.0).eval()
    with torch.no_grad():  # sharper attention than at init, so that heads, rows and layers all differ
        for block in model.transformer.h:
            block.attn.c_attn.weight.mul_(12)
    ids = torch.randint(40, (12,))
    att = attention_maps(model, ids)  # (2, 4, 12, 12)
    # layer 0 by hand: LayerNorm of token + position embeddings, Q K from c_attn, softmax(QK^T / sqrt(hs)), causal
    t, T, nh, d = model.transformer, 12, 4, 32
    with torch.no_grad():
        x = t.h[0].ln_1(t.wte(ids) + t.wpe(torch.arange(T)))  # (T, d)
        q, k, _ = t.h[0].attn.c_attn(x).split(d, dim=-1)  # (T, d) each
        q, k = q.view(T, nh, d // nh).transpose(0, 1), k.view(T, nh, d // nh).transpose(0, 1)  # (nh, T, hs)
        scores = q @ k.transpose(-1, -2) / math.sqrt(d // nh)  # (nh, T, T)
        ref = scores.masked_fill(torch.ones(T, T).triu(1).bool(), float("-inf")).softmax(-1)
    torch.testing.assert_close(att[0], ref, rtol=1e-4, atol=1e-5)
    assert float((att[0, 0] - att[0, 1]).abs().max()) > 0.2 and float((att[0] - att[1]).abs().max()) > 0.2
    back = _unpack(pack_attention(att), 2, nh, T)
    assert float((back - att).abs().max()) <= 0.5 / 255 + 1e-6


def test_the_run_carries_the_attention_of_its_saved_model_on_the_prompt(tiny_run):
    from tokenizers import Tokenizer
    from transformers import AutoModelForCausalLM

    _, r = tiny_run
    model = AutoModelForCausalLM.from_pretrained(r.run_path).eval()
    text = "".join(r.attention.tokens)  # char tokenizer: one token per character
    ids = torch.tensor(Tokenizer.from_file(f"{r.run_path}/tokenizer.json").encode(text).ids)
    assert len(ids) == len(r.attention.tokens) == 16  # the val text cut to the context
    back = _unpack(r.attention.weights_b64, 1, 2, 16)
    assert float((back - attention_maps(model, ids)).abs().max()) <= 0.5 / 255 + 1e-5


def test_our_loss_equals_transformers_labels_loss_on_the_same_tokens():
    torch.manual_seed(0)
    model = build_model(50, 2, 2, 16, 17, 0.0).eval()
    seq = torch.randint(50, (3, 17))
    x, y = seq[:, :-1], seq[:, 1:]
    with torch.no_grad():
        assert float(loss_of(model, x, y)) == pytest.approx(
            float(model(input_ids=seq, labels=seq).loss), rel=1e-5
        )


def test_attention_rows_sum_to_one_are_zero_above_the_diagonal_and_eager_matches_sdpa():
    torch.manual_seed(0)
    model = build_model(40, 2, 4, 32, 32, 0.0).eval()
    ids = torch.randint(40, (12,))
    att = attention_maps(model, ids)
    assert att.shape == (2, 4, 12, 12)
    torch.testing.assert_close(att.sum(-1), torch.ones(2, 4, 12))
    assert float(att.triu(1).abs().max()) == 0.0
    with torch.no_grad():
        sdpa = model(input_ids=ids[None]).logits
        model.set_attn_implementation("eager")
        eager = model(input_ids=ids[None]).logits
    torch.testing.assert_close(sdpa, eager, rtol=1e-4, atol=1e-5)


def test_bigram_baseline_equals_dense_counts_with_the_same_smoothing():
    g = torch.Generator().manual_seed(0)
    train_ids, val_ids, V = torch.randint(7, (500,), generator=g), torch.randint(7, (100,), generator=g), 7
    loss, alpha = bigram_loss(train_ids, val_ids, V)
    counts = torch.zeros(V, V, dtype=torch.float64)
    for a, b in zip(train_ids[:-1].tolist(), train_ids[1:].tolist(), strict=True):
        counts[a, b] += 1
    probs = (counts + alpha) / (counts + alpha).sum(1, keepdim=True)
    assert loss == pytest.approx(float(-probs[val_ids[:-1], val_ids[1:]].log().mean()), rel=1e-9)


def test_sampling_distribution_is_softmax_of_logits_over_temperature_then_top_k_and_top_p():
    logits = torch.tensor([2.0, 1.0, 0.5, 0.0, -1.0])
    torch.testing.assert_close(
        sampling_distribution(logits, 0.5, None, None), torch.softmax(logits / 0.5, -1)
    )
    assert sampling_distribution(logits, 0.0, None, None).tolist() == [1.0, 0, 0, 0, 0]
    k2 = sampling_distribution(logits, 1.0, 2, None)
    torch.testing.assert_close(k2[:2], torch.softmax(logits[:2], -1))
    assert k2[2:].sum() == 0
    p = torch.softmax(
        logits, -1
    )  # 0.61, 0.22, 0.14, ...: top_p 0.8 keeps the first three (0.61 + 0.22 < 0.8)
    nucleus = sampling_distribution(logits, 1.0, None, 0.8)
    torch.testing.assert_close(nucleus[:3], p[:3] / p[:3].sum())
    assert nucleus[3:].sum() == 0


def test_sample_text_shows_probabilities_greedy_is_argmax_and_low_temperature_is_surer(tiny_run):
    cfg, r = tiny_run
    greedy = sample(
        SampleTextInput(run_id=r.run_id, prompt="ma", temperature=0.0, max_new_tokens=10), cfg, NullReporter()
    )
    g = greedy.result
    assert all(t.probability == 1.0 and t.alternatives[0].token == t.token for t in g.tokens)
    assert all(t.model_probability >= t.alternatives[1].probability - 1e-9 for t in g.tokens)
    cold, hot = (
        sample(
            SampleTextInput(run_id=r.run_id, prompt="ma", temperature=t, max_new_tokens=20, seed=1),
            cfg,
            NullReporter(),
        ).result
        for t in (0.2, 1.5)
    )
    assert sum(t.probability for t in cold.tokens) > sum(t.probability for t in hot.tokens)
    again = sample(
        SampleTextInput(run_id=r.run_id, prompt="ma", temperature=1.5, max_new_tokens=20, seed=1),
        cfg,
        NullReporter(),
    )
    assert again.result.text == hot.text
    for t in hot.tokens:
        assert sum(c.probability for c in t.alternatives) <= 1.0 + 1e-6
        listed = [c.probability for c in t.alternatives if c.token == t.token]
        if listed:  # the chosen token is among the top 5 with the same probability, or less likely than all 5
            assert math.isclose(listed[0], t.probability, rel_tol=1e-4)
        else:
            assert t.probability <= min(c.probability for c in t.alternatives) + 1e-6


def test_sample_text_loads_a_local_model_folder_and_refuses_one_that_is_not_a_causal_lm(tiny_run, tmp_path):
    cfg0, r = tiny_run
    cfg = LabConfig.create(tmp_path / "out", [tmp_path, r.run_path])
    out = sample(
        SampleTextInput(model_path=r.run_path, prompt="ma", temperature=0.0, max_new_tokens=5),
        cfg,
        NullReporter(),
    )
    by_id = sample(
        SampleTextInput(run_id=r.run_id, prompt="ma", temperature=0.0, max_new_tokens=5), cfg0, NullReporter()
    )
    assert out.result.text == by_id.result.text
    (tmp_path / "vit").mkdir()
    (tmp_path / "vit" / "config.json").write_text('{"model_type": "vit"}')
    for kwargs, argument in [
        ({"model_path": str(tmp_path / "vit")}, "model_path"),
        ({"model_path": str(tmp_path)}, "model_path"),
        ({"model_path": "/etc"}, "model_path"),
        ({}, "run_id"),
        ({"run_id": "../../etc"}, "run_id"),
    ]:
        with pytest.raises(InvalidArgument) as exc:
            sample(SampleTextInput(**kwargs), cfg, NullReporter())
        assert exc.value.argument == argument, kwargs


@pytest.mark.parametrize(
    ("kwargs", "limits", "argument"),
    [
        ({"n_head": 3, "n_embd": 64}, {}, "n_head"),
        ({"text": "hello world " * 5}, {}, "text"),
        ({"text": "   \n "}, {}, "text"),
        ({"text": "ab\x00\x01\x02\x03" * 50}, {}, "text"),
        ({"text": TEXT}, {"gpt_max_vocab": 10}, "text"),
        ({"text": TEXT, "tokenizer": "bpe", "bpe_merges": 100}, {"gpt_max_vocab": 300}, "bpe_merges"),
        ({"text": TEXT, "n_embd": 384, "n_layer": 8}, {"gpt_max_parameters": 1_000_000}, "n_embd"),
        ({"text": TEXT, "time_budget_s": 7200.0}, {}, "time_budget_s"),
        ({"text": TEXT}, {"gpt_max_corpus_chars": 100}, "text"),
        ({"text": TEXT, "corpus_path": "/etc/passwd"}, {}, "corpus_path"),
        ({"corpus_path": "/etc/passwd"}, {}, "corpus_path"),
    ],
)
def test_bad_input_is_refused_naming_the_argument(tmp_path, kwargs, limits, argument):
    cfg = LabConfig.create(tmp_path / "out", [tmp_path], limits=Limits(**limits))
    with pytest.raises(InvalidArgument) as exc:
        train(TrainTinyGptInput(**{**TINY, **kwargs}), cfg, NullReporter())
    assert exc.value.argument == argument


def test_progress_is_reported_at_every_evaluation_with_the_sample_and_cancel_stops_training(cfg):
    from tools.common import Cancelled

    class Rep(NullReporter):
        def __init__(self):
            self.messages, self.partials = [], []

        def progress(self, done, total=None, message=None):
            self.messages.append((done, total, message))

        def partial(self, result):
            self.partials.append(result)

    rep = Rep()
    r = train(TrainTinyGptInput(text=TEXT, **TINY), cfg, rep).result
    evals = [m for m in rep.messages if m[2] and m[2].startswith("step")]
    assert [m[0] for m in evals] == r.history.step == [0, 3, 6]
    assert rep.partials[-1]["history"]["val_loss"] == r.history.val_loss

    class Cancel(NullReporter):
        def check_cancelled(self):
            raise Cancelled()

    with pytest.raises(Cancelled):
        train(
            TrainTinyGptInput(text=TEXT, **{**TINY, "max_steps": 20_000, "eval_interval": 5000}),
            cfg,
            Cancel(),
        )


@pytest.mark.slow
def test_the_quick_preset_on_the_builtin_english_corpus_beats_the_bigram_baseline(cfg):
    r = train(TrainTinyGptInput(preset="quick", time_budget_s=600.0), cfg, NullReporter()).result
    assert r.stop_reason == "completed"
    assert r.final_val_loss < r.baselines.bigram_loss < r.baselines.uniform_loss


def test_sample_text_reuses_a_loaded_model_until_its_files_change(tiny_run, tmp_path):
    import shutil

    from transformers import AutoModelForCausalLM

    from tools.sample_text import sample as sample_mod

    cfg0, r = tiny_run
    folder = tmp_path / "model"
    shutil.copytree(r.run_path, folder)
    cfg = LabConfig.create(tmp_path / "out", [tmp_path])
    args = SampleTextInput(model_path=str(folder), prompt="ma", temperature=0.0, max_new_tokens=6)
    first = sample(args, cfg, NullReporter()).result
    m1 = sample_mod.load(folder, "model_path", str(folder), cfg)[0]
    assert sample_mod.load(folder, "model_path", str(folder), cfg)[0] is m1  # one load, reused
    # new weights in the same folder (as a re-run would write): loaded again, and the text follows them
    model = AutoModelForCausalLM.from_pretrained(folder)
    for p in model.parameters():
        p.data.mul_(-1.0)
    model.save_pretrained(folder)
    m2 = sample_mod.load(folder, "model_path", str(folder), cfg)[0]
    assert m2 is not m1
    assert all(torch.equal(a, b) for a, b in zip(m2.parameters(), model.parameters(), strict=True))
    again = sample(args, cfg, NullReporter()).result
    assert [t.model_probability for t in again.tokens] != [t.model_probability for t in first.tokens]
    # a stricter limit is checked, not answered from the cache
    strict = LabConfig.create(tmp_path / "out", [tmp_path], limits=Limits(gpt_max_parameters=10))
    with pytest.raises(InvalidArgument):
        sample(args, strict, NullReporter())
