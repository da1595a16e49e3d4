"""explain_concept as a teacher: remedies the demo can show, labels in the answer's language, no base64 in
text lines, and suggestions that follow the concept's own links."""

from __future__ import annotations

import json
import math
import re

import pytest

from tools.common import NullReporter
from tools.config import LabConfig
from tools.explain import ExplainInput, run
from tools.explain.demos import DemoParams, run_demo
from tools.explain.explain import concept_markdown
from tools.explain.knowledge import load_kb

BASE64_RUN = re.compile(r"base64,[A-Za-z0-9+/=]{40,}")


@pytest.fixture
def cfg(tmp_path):
    return LabConfig.create(tmp_path / "out", [tmp_path])


def explain(cfg, **kwargs):
    return run(ExplainInput(**kwargs), cfg, NullReporter())


def test_depth_demo_shows_kaiming_relu_and_residuals_as_the_remedies_and_why_default_relu_vanishes():
    r, _ = run_demo("depth_gradient", DemoParams(demo_input=[1, 20, 50], plot=False))
    plain, residual = r.values["input_gradient_norm_plain"], r.values["input_gradient_norm_residual"]
    # plain ReLU with nn.Linear's default init vanishes: about sqrt(1/6) = 0.41 per layer
    factor = (plain["relu"][2] / plain["relu"][1]) ** (1 / 30)
    assert plain["relu"][2] < 1e-6 * plain["relu"][0]
    assert factor == pytest.approx(math.sqrt(1 / 6), rel=0.25)
    # ReLU with Kaiming init keeps the gradient's size (down by 10 to 1000 at 50 layers, as the note says)
    kaiming = plain["relu_kaiming"]
    assert all(1e-3 * kaiming[0] <= v <= 1e2 * kaiming[0] for v in kaiming)
    assert kaiming[2] > 1e12 * plain["relu"][2]
    # residuals: no vanishing either
    assert residual["relu"][2] >= 0.5 * residual["relu"][0]
    text = " ".join(n.en for n in r.notes)
    assert "default init" in text and "0.41" in text and "Kaiming" in text and "Residual" in text


@pytest.mark.parametrize(
    ("query", "language", "labels", "absent"),
    [
        ("学习率", "zh", ("公式:", "动手试试:"), "Formula"),
        ("learning rate", "en", ("Formula:", "Try it:"), "公式"),
    ],
)
def test_text_labels_follow_the_answer_language(cfg, query, language, labels, absent):
    out = explain(cfg, concept=query, detail="full", demo=False)
    assert out.result.language == language
    for label in labels:
        assert label in out.summary
    assert absent not in out.summary


def test_no_text_line_carries_a_base64_data_uri_but_the_structured_call_keeps_it(cfg):
    kb = load_kb()
    with_uri = [
        c for c in kb.concepts.values() if c.try_it and "data:image" in json.dumps(c.try_it.arguments)
    ]
    assert with_uri  # the knowledge base has such calls (tensorize_image examples)
    for c in with_uri:
        out = explain(cfg, concept=c.id, detail="full", demo=False)
        assert not BASE64_RUN.search(out.summary), c.id
        assert "chars, see try_it.arguments" in out.summary
        assert not BASE64_RUN.search(concept_markdown(c)), c.id
        assert out.result.try_it.arguments == c.try_it.arguments  # still runnable as given


def test_suggestions_on_an_exact_match_are_the_concepts_own_links(cfg):
    r = explain(cfg, concept="vanishing gradient", detail="summary").result
    kb = load_kb()
    assert r.id == "vanishing_gradient"
    assert [s.id for s in r.suggestions] == kb.concepts["vanishing_gradient"].related[:3]
    assert "denoising_strength" not in [s.id for s in r.suggestions]
