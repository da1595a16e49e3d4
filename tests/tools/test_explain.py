"""explain_concept: lookup by any name in either language, fuzzy matching, language choice, result shape."""

from __future__ import annotations

import subprocess
import sys

import pytest
from pydantic import ValidationError

from tools.common import InvalidArgument, NullReporter
from tools.config import LabConfig
from tools.explain import (
    ExplainInput,
    ExplainResult,
    concept_markdown,
    index_markdown,
    load_kb,
    lookup,
    rank,
    resolve_language,
    run,
)


@pytest.fixture
def cfg(tmp_path):
    return LabConfig.create(tmp_path / "out", [tmp_path])


def explain(cfg, **kwargs):
    out = run(ExplainInput(**kwargs), cfg, NullReporter())
    assert isinstance(out.result, ExplainResult)
    return out


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("relu", "relu"),
        ("ReLU", "relu"),
        ("relu activation", "relu"),
        ("Rectified Linear Unit", "relu"),
        ("残差", "residual_connection"),
        ("残差连接", "residual_connection"),
        ("Residual-Connection", "residual_connection"),
        ("residual_connection", "residual_connection"),
        ("skip connection", "residual_connection"),
        ("lr", "learning_rate"),
        ("LR", "learning_rate"),
        ("学习率", "learning_rate"),
        ("__getitem__", "getitem_len"),
        ("CHW", "hwc_chw"),
        ("batchnorm", "batch_norm"),
        ("Batch Norm", "batch_norm"),
        ("批归一化", "batch_norm"),
        ("weight decay", "regularization"),
        ("反向传播", "backpropagation"),
        ("交叉熵", "cross_entropy"),
        ("Ｒｅｌｕ", "relu"),  # full-width letters
    ],
)
def test_lookup_finds_every_name_and_alias_ignoring_case_space_and_punctuation(query, expected):
    concept, score, _ = lookup(query)
    assert concept is not None and concept.id == expected, (query, concept and concept.id)
    assert score >= 0.99


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("resdual conection", "residual_connection"),  # typos
        ("learnign rate", "learning_rate"),
        ("what is a residual connection?", "residual_connection"),  # a whole question
        ("什么是梯度消失", "vanishing_gradient"),
        ("dead relu", "relu"),  # an extra word
        ("how does backprop work", "backpropagation"),
        ("vanishing", "vanishing_gradient"),
    ],
)
def test_lookup_is_fuzzy_for_typos_partial_names_and_questions(query, expected):
    concept, score, _ = lookup(query)
    assert concept is not None and concept.id == expected, (query, concept and concept.id)
    assert score < 1.0


def test_every_name_and_alias_of_every_concept_finds_its_own_concept():
    for c in load_kb().concepts.values():
        for name in [c.id, c.names.en, c.names.zh, *c.aliases_en, *c.aliases_zh]:
            assert rank(name, limit=1) == [(c.id, 1.0)], (c.id, name)


def test_unknown_query_returns_found_false_with_suggestions_not_an_error(cfg):
    out = explain(cfg, concept="banana bread recipe")
    r = out.result
    assert r.found is False and r.id is None and r.explanation is None
    assert 1 <= len(r.suggestions) <= 5
    assert all(s.id in load_kb().concepts for s in r.suggestions)
    assert "explain_concept" in r.message and "concepts://index" in r.message
    assert "Closest" in out.summary and not out.images


def test_near_miss_suggestions_include_the_intended_concept(cfg):
    r = explain(cfg, concept="zero grad").result
    ids = [s.id for s in r.suggestions]
    assert "gradient" in ids


def test_language_defaults_to_the_script_of_the_query():
    assert resolve_language("residual connection", "auto") == "en"
    assert resolve_language("残差连接", "auto") == "zh"
    assert resolve_language("ReLU 激活函数", "auto") == "zh"
    assert resolve_language("残差连接", "en") == "en"


def test_chinese_query_answers_in_chinese_only(cfg):
    r = explain(cfg, concept="学习率", demo=False).result
    assert r.language == "zh" and r.id == "learning_rate"
    assert r.name.zh == "学习率" and r.name.en is None
    assert r.summary.zh and r.summary.en is None
    assert all(p.zh and p.en is None for p in r.pitfalls)
    assert all(rel.name.zh and rel.name.en is None for rel in r.related)


def test_language_both_gives_both_texts(cfg):
    r = explain(cfg, concept="dropout", language="both", demo=False).result
    assert r.explanation.en and r.explanation.zh
    assert r.analogy.en and r.analogy.zh
    assert r.try_it.what_to_look_for.en and r.try_it.what_to_look_for.zh


def test_summary_detail_leaves_out_the_long_parts_and_the_demo(cfg):
    out = explain(cfg, concept="softmax", detail="summary")
    r = out.result
    assert r.found and r.summary.en
    assert r.explanation is None and r.snippet is None and r.formula is None and r.demo is None
    assert r.demo_name == "softmax" and not out.images
    assert r.related, "related concepts are part of the summary"


def test_full_detail_carries_formula_snippet_try_it_and_a_live_demo_with_plot(cfg):
    out = explain(cfg, concept="relu")
    r = out.result
    assert r.formula and "max" in r.formula
    assert "torch.relu" in r.snippet
    assert r.try_it.tool in ("tensorize_image", "train_toy_mlp", "generate_image", "explain_concept")
    assert r.demo.name == "relu" and r.demo.has_plot
    assert len(out.images) == 1 and out.images[0].png[:8] == b"\x89PNG\r\n\x1a\n"
    assert r.resource_uri == "concept://relu"


def test_demo_false_skips_the_computation(cfg):
    out = explain(cfg, concept="relu", demo=False)
    assert out.result.demo is None and out.result.demo_name == "relu" and not out.images


def test_demo_parameters_reach_the_demo(cfg):
    r = explain(cfg, concept="softmax", demo_input=[1.0, 1.0], temperature=2.0, plot=False).result
    assert r.demo.values["probabilities"] == [0.5, 0.5]
    assert r.demo.parameters["temperature"] == 2.0


def test_result_is_json_serializable_and_well_under_the_size_cap(cfg):
    for name in ("activation function", "gradient descent", "batch norm", "tensor", "关系不大的词"):
        out = explain(cfg, concept=name, language="both")
        size = len(out.result.model_dump_json()) + sum(len(i.png) for i in out.images)
        assert size < 300_000, (name, size)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("concept", ""),
        ("concept", "x" * 201),
        ("language", "fr"),
        ("detail", "everything"),
        ("temperature", 0.0),
        ("temperature", float("nan")),
        ("learning_rate", float("inf")),
        ("learning_rate", -0.1),
        ("demo_input", [1.0, float("nan")]),
        ("demo_input", []),
        ("demo_input", [0.0] * 65),
        ("dropout_p", 1.0),
        ("steps", 0),
        ("seed", -1),
    ],
)
def test_input_model_refuses_out_of_range_arguments_naming_them(field, value):
    args = {"concept": "relu", field: value}
    with pytest.raises(ValidationError) as exc:
        ExplainInput(**args)
    assert field in str(exc.value)


def test_demo_specific_refusals_name_the_argument(cfg):
    with pytest.raises(InvalidArgument, match="demo_input"):
        explain(cfg, concept="convolution", demo_input=[1.0, 2.0])
    with pytest.raises(InvalidArgument, match="target_class"):
        explain(cfg, concept="cross entropy", demo_input=[1.0, 2.0], target_class=5)
    with pytest.raises(InvalidArgument, match="demo_target"):
        explain(cfg, concept="mse", demo_input=[1.0, 2.0], demo_target=[1.0])
    with pytest.raises(InvalidArgument, match="demo_input"):
        explain(cfg, concept="normalization", demo_input=[300.0])


def test_concept_markdown_has_both_languages_code_and_formula():
    kb = load_kb()
    md = concept_markdown(kb.concepts["residual_connection"], "both")
    assert md.startswith("# Residual connection / 残差连接")
    assert "## English" in md and "## 中文" in md
    assert "```python" in md and "$$" in md and "train_toy_mlp(" in md


def test_index_lists_every_concept_once():
    kb = load_kb()
    md = index_markdown()
    for cid in kb.concepts:
        assert md.count(f"`{cid}`") == 1, cid


def test_importing_tools_explain_does_not_import_torch_or_mcp():
    code = (
        "import sys, tools.explain as e; e.load_kb(); e.lookup('relu'); "
        "bad = [m for m in ('torch', 'matplotlib', 'mcp') if m in sys.modules]; print(bad); sys.exit(1 if bad else 0)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


def test_knowledge_base_is_loaded_once():
    assert load_kb() is load_kb()
