"""Which prompt words a built-in model never saw in training (said out loud by generate_image)."""

from __future__ import annotations

import json

from tools import builtin_vocab, diffusion_models, phrasing, scenes


def test_unknown_words_are_the_words_the_first_tokenizer_splits_into_pieces(tmp_path):
    prompt = "Please draw a TINY crimson circle, upper-left corner; zebras over the backdrop!"
    tok = builtin_vocab.load_tokenizer(builtin_vocab.write_tokenizer_files(tmp_path, version=1))
    pieces = {
        w: tok.tokenize(w)
        for w in prompt.lower()
        .replace(",", " ")
        .replace(";", " ")
        .replace("!", " ")
        .replace("-", " ")
        .split()
    }
    reference = [w for w, p in pieces.items() if len(p) > 1]  # v1 made every trained word one token
    assert diffusion_models.unknown_words(prompt, list(scenes.VOCABULARY)) == reference
    assert reference == ["please", "draw", "tiny", "crimson", "upper", "zebras", "over", "backdrop"]
    assert diffusion_models.unknown_words(prompt, list(phrasing.VOCABULARY)) == ["crimson", "zebras"]


def test_trained_words_come_from_the_export_file_or_the_first_vocabulary(tmp_path):
    assert diffusion_models.trained_words(tmp_path) == list(scenes.VOCABULARY)
    (tmp_path / "tokenizer").mkdir()
    (tmp_path / diffusion_models.TRAINED_WORDS_FILE).write_text(json.dumps(["red", "tiny"]))
    assert diffusion_models.trained_words(tmp_path) == ["red", "tiny"]
