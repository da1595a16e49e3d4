"""Stage 4 of the training script: growing the text encoder to vocabulary v2 keeps what it knew."""

from __future__ import annotations

import torch
from transformers import CLIPTextConfig, CLIPTextModel

from tools import builtin_vocab
from train_image_model import train_builtin_model as tb


def tiny_text_encoder(vocab: dict[str, int]) -> CLIPTextModel:
    torch.manual_seed(0)
    cfg = CLIPTextConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        max_position_embeddings=builtin_vocab.MAX_LENGTH,
        bos_token_id=vocab[builtin_vocab.BOS],
        eos_token_id=vocab[builtin_vocab.EOS],
        pad_token_id=vocab[builtin_vocab.EOS],
    )
    return CLIPTextModel(cfg).eval()


def encode(model, tok, text: str) -> torch.Tensor:
    ids = tok(text, padding="max_length", max_length=builtin_vocab.MAX_LENGTH, return_tensors="pt").input_ids
    with torch.no_grad():
        return model(ids).last_hidden_state  # (1, 32, hidden)


def test_grown_text_encoder_reads_old_prompts_unchanged_and_synonyms_as_their_words(tmp_path):
    tok1 = builtin_vocab.load_tokenizer(builtin_vocab.write_tokenizer_files(tmp_path / "v1", version=1))
    tok2 = builtin_vocab.load_tokenizer(builtin_vocab.write_tokenizer_files(tmp_path / "v2", version=2))
    model = tiny_text_encoder(tok1.get_vocab())
    old_prompt = "a small red circle in the top left on a blue background"
    before = encode(model, tok1, old_prompt)

    init = tb.grow_vocabulary(model, tok1.get_vocab(), tok2.get_vocab())

    assert model.config.vocab_size == len(tok2.get_vocab()) == model.get_input_embeddings().weight.shape[0]
    assert torch.equal(encode(model, tok2, old_prompt), before)
    # a synonym starts as an exact copy of its version-1 word, so the prompt means the same before training
    synonyms = "a tiny red disc in the upper left over a blue backdrop"
    assert torch.equal(
        encode(model, tok2, synonyms),
        encode(model, tok2, "a small red circle in the top left on a blue background"),
    )
    assert (
        init["tiny"] == "small" and init["centre"] == "center" and init["please"] == "mean of function words"
    )
    assert not torch.equal(
        encode(model, tok2, "a red circle"), encode(model, tok2, "please draw a red circle")
    )


def test_synonym_table_maps_every_synonym_to_a_version_1_word():
    from tools import scenes

    for word, canonical in [
        ("huge", "large"),
        ("mid", "medium"),
        ("lower", "bottom"),
        ("against", "on"),
        ("disk", "circle"),
    ]:
        assert tb.synonym_of(word) == canonical and canonical in scenes.VOCABULARY
    assert tb.synonym_of("red") is None and tb.synonym_of("please") is None
