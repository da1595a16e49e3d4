"""The shipped CJK font: it loads offline, covers the Chinese the project writes, and the pictures use it
(tokenize_text's boxes draw hanzi, explain_concept's figures have Chinese titles and labels in zh answers)."""

from __future__ import annotations

import re
import warnings

import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg

from tools.common import NullReporter
from tools.config import LabConfig
from tools.explain import ExplainInput, run
from tools.explain.knowledge import load_kb
from tools.fonts import CJK_FONT, cjk_codepoints, cjk_pil_font, use_cjk_in_matplotlib

HANZI = re.compile(r"[\u3000-\u303f\u3400-\u9fff\uff00-\uffef]")


def _gb2312_level1() -> set[str]:
    raw = (bytes([hi, lo]) for hi in range(0xB0, 0xD8) for lo in range(0xA1, 0xFF))
    return {c for b in raw if (c := b.decode("gb2312", errors="ignore"))}


def test_the_font_ships_small_and_covers_gb2312_level_1_and_every_hanzi_of_the_knowledge_base():
    assert CJK_FONT.is_file() and CJK_FONT.stat().st_size <= 2_000_000
    cps = cjk_codepoints()
    level1 = _gb2312_level1()
    assert len(level1) == 3755 and all(ord(c) in cps for c in level1)
    assert all(ord(c) in cps for c in "草莓是红色的，。")
    kb = load_kb()
    names = "".join(c.names.zh for c in kb.concepts.values())
    everything = "".join(c.model_dump_json() for c in kb.concepts.values())
    assert HANZI.search(names)
    missing = {c for c in HANZI.findall(everything) if ord(c) not in cps}
    assert not missing, (
        f"rebuild tools/assets/fonts (make_subset.py): no glyph for {''.join(sorted(missing))}"
    )


def test_a_hanzi_renders_as_its_own_glyph_not_the_missing_glyph_box():
    font = cjk_pil_font(17)
    box = font.getmask("\ue000")  # private use: not in the font, drawn as .notdef
    for ch in "草莓":
        mask = font.getmask(ch)
        assert mask.getbbox() is not None
        assert bytes(mask) != bytes(box)
    assert bytes(font.getmask("草")) != bytes(font.getmask("莓"))


def test_tokenize_picture_draws_chinese_with_the_cjk_font_and_codes_only_what_no_font_has():
    from PIL import Image, ImageDraw

    from tools.tokenize_text import picture
    from tools.tokenize_text.schema import Token, Tokenized

    (latin, _), (cjk, _), _ = picture._fonts()
    runs = picture._runs("草莓 ok龘")  # 龘: a rare hanzi outside the subset
    assert runs == [("草莓", cjk), ("␣okU+9F98", latin)]

    tok = Tokenized(text="草", tokens=[Token(id=7, text="草", start=0, end=1)], n_characters=1, n_bytes=3,
                    n_tokens=1, characters_per_token=1.0, bytes_per_token=3.0, unknown_tokens=0)  # fmt: skip
    drawn = Image.open(__import__("io").BytesIO(picture.draw([tok], "chars"))).convert("RGB")
    # the same box drawn by hand with the CJK font: the picture's box must match it pixel for pixel
    x, y = picture.PAD, 22 + 26
    w = int(max(cjk_pil_font(17).getlength("草"), picture._fonts()[2].getlength("7"))) + 8
    ref = Image.new("RGB", drawn.size, "white")
    ImageDraw.Draw(ref).rectangle((x, y, x + w, y + 24), fill=picture.COLOURS[0], outline="#888888")
    ImageDraw.Draw(ref).text((x + 4, y + 2), "草", fill="black", font=cjk_pil_font(17))
    region = (x + 1, y + 1, x + w, y + 24)
    assert drawn.crop(region).tobytes() == ref.crop(region).tobytes()
    ImageDraw.Draw(ref).rectangle((x, y, x + w, y + 24), fill=picture.COLOURS[0], outline="#888888")
    ImageDraw.Draw(ref).text((x + 4, y + 2), "U+8349", fill="black", font=picture._fonts()[0][0])
    assert drawn.crop(region).tobytes() != ref.crop(region).tobytes()


def _figure_of(monkeypatch, cfg, **kwargs):
    from tools.explain import demos

    figs = []
    real_png = demos._png
    monkeypatch.setattr(demos, "_png", lambda fig: figs.append(fig) or real_png(fig))
    run(ExplainInput(detail="full", **kwargs), cfg, NullReporter())
    (fig,) = figs
    return fig


def _texts(fig) -> list[str]:
    return [t for ax in fig.axes for t in (ax.get_title(), ax.get_xlabel(), ax.get_ylabel()) if t]


@pytest.mark.parametrize("concept", ["梯度下降", "softmax"])
def test_explain_figure_in_a_chinese_answer_has_chinese_titles_drawn_without_missing_glyphs(
    monkeypatch, tmp_path, concept
):
    cfg = LabConfig.create(tmp_path / "out", [tmp_path])
    fig = _figure_of(monkeypatch, cfg, concept=concept, language="zh")
    texts = _texts(fig)
    assert any(HANZI.search(t) for t in texts), texts
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        FigureCanvasAgg(
            fig
        ).draw()  # matplotlib warns "Glyph ... missing from font(s)" for a character it cannot draw
    assert not [w for w in caught if "missing from font" in str(w.message)]
    # the same figure in English keeps English labels
    fig_en = _figure_of(monkeypatch, cfg, concept=concept, language="en")
    assert _texts(fig_en) and not any(HANZI.search(t) for t in _texts(fig_en))


def test_without_the_fallback_font_matplotlib_would_miss_the_chinese_glyphs():
    """The control for the test above: DejaVu Sans alone cannot draw the labels."""
    from matplotlib.figure import Figure

    use_cjk_in_matplotlib()
    fig = Figure()
    fig.suptitle("每一步的 |x|", family=["DejaVu Sans"])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        FigureCanvasAgg(fig).draw()
    assert [w for w in caught if "missing from font" in str(w.message)]


def test_token_labels_of_the_gpt_pictures_keep_hanzi_the_font_has_and_code_the_rest():
    from tools.sample_text.sample import _label as sample_label
    from tools.tiny_gpt.picture import _label as attention_label

    for label in (sample_label, attention_label):
        assert label("草莓 是") == "草莓␣是"
        assert label("龘") == "U+9F98"
