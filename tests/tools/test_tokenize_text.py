"""tokenize_text: strawberry and a Chinese sentence, spans that point back into the text, bad input named."""

from __future__ import annotations

import pytest

from tools.common import InvalidArgument, NullReporter
from tools.config import LabConfig
from tools.tokenize_text import TokenizeTextInput, run

STRAWBERRY = "How many r's are in strawberry?"
ZH = "草莓这个词里有几个字母r？"


@pytest.fixture
def cfg(tmp_path):
    return LabConfig.create(tmp_path / "out", [tmp_path])


def _tok(cfg, **kw):
    return run(TokenizeTextInput(**kw), cfg, NullReporter()).result


def test_bpe_splits_strawberry_into_pieces_whose_spans_rebuild_the_text(cfg):
    r = _tok(cfg, text=STRAWBERRY, tokenizer="bpe", bpe_merges=300)
    pieces = [STRAWBERRY[t.start : t.end] for t in r.main.tokens]
    assert "".join(t.text for t in r.main.tokens) == STRAWBERRY == "".join(pieces)
    assert [t.text for t in r.main.tokens] == pieces
    assert "strawberry" not in [t.text.strip() for t in r.main.tokens]  # the model never sees the word whole
    assert r.main.n_tokens < r.main.n_characters and r.vocab_size == 1 + 256 + 300
    assert len(r.first_merges) == 20 and r.first_merges[0].count("+") == 1


def test_chinese_costs_three_byte_tokens_a_character_and_a_chinese_bpe_joins_them(cfg):
    by_bytes = _tok(cfg, text=ZH, tokenizer="bytes")
    by_chars = _tok(cfg, text=ZH, tokenizer="chars")
    zh_bpe = _tok(cfg, text=ZH, tokenizer="bpe", corpus="concepts_zh", bpe_merges=800)
    assert by_chars.main.n_tokens == len(ZH) and [t.id for t in by_chars.main.tokens] == [ord(c) for c in ZH]
    assert by_bytes.main.n_tokens == len(ZH.encode("utf-8")) == by_bytes.main.n_bytes
    assert [t.id for t in by_bytes.main.tokens] == list(ZH.encode("utf-8"))
    assert by_bytes.main.tokens[0].text == "<e8>" and by_bytes.main.tokens[0].end == 1
    assert zh_bpe.main.n_tokens < by_bytes.main.n_tokens


def test_compare_text_is_tokenized_the_same_way_side_by_side(cfg, tmp_path):
    from PIL import Image

    r = _tok(cfg, text="strawberry", compare_text=ZH, tokenizer="bytes")
    assert r.compare is not None and r.compare.n_tokens == len(ZH.encode("utf-8"))
    assert r.compare.bytes_per_token == 1.0 and r.main.characters_per_token == 1.0
    assert Image.open(r.picture_path).size[0] == 1000


def test_the_builtin_image_tokenizer_matches_transformers_and_marks_special_tokens(cfg):
    from transformers import AutoTokenizer

    from tools.tokenize_text.tokenize import BUILTIN_IMAGE_TOKENIZER

    r = _tok(cfg, text="a red circle", tokenizer="builtin_image")
    hf = AutoTokenizer.from_pretrained(BUILTIN_IMAGE_TOKENIZER.parent)
    assert [t.id for t in r.main.tokens] == hf("a red circle", padding=False)["input_ids"]
    assert r.main.tokens[0].special and r.main.tokens[-1].special
    assert not any(t.special for t in r.main.tokens[1:-1])


def test_a_tokenizer_json_file_or_folder_under_the_allowed_folders_loads(cfg, tmp_path):
    from tools.tiny_gpt.tokenizer import train_char

    train_char("abc def").save(str(tmp_path / "tokenizer.json"))
    for given in (str(tmp_path), str(tmp_path / "tokenizer.json")):
        r = _tok(cfg, text="bad cafe", tokenizer="folder", tokenizer_path=given)
        assert r.main.n_tokens == 8 and r.main.unknown_tokens == 0
    r = _tok(cfg, text="xyz", tokenizer="folder", tokenizer_path=str(tmp_path))
    assert r.main.unknown_tokens == 3


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        ({"text": "   "}, "text"),
        ({"text": "ab\x00\x01\x02cd"}, "text"),
        ({}, "text"),
        ({"text": "a", "path": "/etc/passwd"}, "text"),
        ({"path": "/etc/passwd"}, "path"),
        ({"text": "a", "tokenizer": "run", "run_id": "nope"}, "run_id"),
        ({"text": "a", "tokenizer": "run"}, "run_id"),
        ({"text": "a", "tokenizer": "chars", "corpus_path": "/tmp"}, "corpus_path"),
        ({"text": "a", "tokenizer": "folder", "tokenizer_path": "/etc"}, "tokenizer_path"),
        ({"text": "a", "tokenizer": "bpe", "corpus_path": "/etc"}, "corpus_path"),
    ],
)
def test_bad_input_is_refused_naming_the_argument(cfg, kwargs, argument):
    with pytest.raises(InvalidArgument) as exc:
        _tok(cfg, **kwargs)
    assert exc.value.argument == argument


def test_a_binary_file_is_refused(cfg, tmp_path):
    (tmp_path / "blob.txt").write_bytes(bytes(range(256)) * 4)
    with pytest.raises(InvalidArgument, match="UTF-8|binary") as exc:
        _tok(cfg, path=str(tmp_path / "blob.txt"))
    assert exc.value.argument == "path"
