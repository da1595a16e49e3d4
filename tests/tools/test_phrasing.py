"""The phrasing grammar: every attribute said (and only what is asked), held-out families kept out of training,
every word one token of the built-in tokenizer, version-1 token ids unchanged."""

from __future__ import annotations

import random
import re

import pytest

from tools import builtin_vocab, phrasing, scenes

# an independent reader of the prompts (regexes written from the list of synonyms, not from the module)
SIZE_RE = {
    "small": r"\b(small|tiny|little)\b",
    "medium": r"\b(medium|mid)\b",
    "large": r"\b(large|big|huge)\b",
}
SHAPE_RE = {"circle": r"\b(circle|disc|disk)\b", "square": r"\bsquare\b", "triangle": r"\btriangle\b"}


def read_position(text: str) -> str | None:
    v = re.findall(r"\b(top|upper|bottom|lower)\b", text)
    h = re.findall(r"\b(left|right)\b", text)
    c = re.findall(r"\b(center|centre|middle)\b", text)
    if c and not v and not h:
        return "center"
    if len(v) == 1 and len(h) == 1 and not c:
        return ("top" if v[0] in ("top", "upper") else "bottom") + " " + h[0]
    return None


def read(text: str) -> dict[str, set[str] | str | None]:
    t = text.lower()
    return {
        "size": {s for s, r in SIZE_RE.items() if re.search(r, t)},
        "shape": {s for s, r in SHAPE_RE.items() if re.search(r, t)},
        "colours": {c for c in scenes.COLOURS if re.search(rf"\b{c}\b", t)},
        "position": read_position(t),
    }


def scenes_for_test(n: int, seed: int = 0) -> list[scenes.Scene]:
    rng = random.Random(seed)
    return [scenes.sample_scene(rng, allow_held_out=True) for _ in range(n)]


@pytest.mark.parametrize("family", sorted(phrasing.FAMILIES))
def test_every_family_says_every_attribute_and_no_other_value(family):
    rng = random.Random(hash(family) % 1000)
    for s in scenes_for_test(150):
        text = phrasing.phrase(s.attributes(), family, rng)
        got = read(text)
        assert got["size"] == {s.size}, text
        assert got["shape"] == {s.shape}, text
        assert got["colours"] == {s.colour, s.background}, text
        assert got["position"] == s.position, text


@pytest.mark.parametrize("family", sorted(phrasing.FAMILIES))
def test_a_dropped_attribute_is_not_said(family):
    rng = random.Random(1)
    for s in scenes_for_test(60, seed=2):
        for drop in scenes.ATTRIBUTES:
            attrs: dict[str, str | None] = {**s.attributes(), drop: None}
            got = read(phrasing.phrase(attrs, family, rng))
            if drop == "size":
                assert got["size"] == set()
            elif drop == "shape":
                assert got["shape"] == set()
            elif drop == "position":
                assert got["position"] is None
            else:
                kept = s.background if drop == "colour" else s.colour
                assert got["colours"] == {kept}


def test_every_value_of_every_attribute_and_every_synonym_is_used():
    rng = random.Random(3)
    texts = [phrasing.describe(s, rng, p_empty=0.0, p_drop=0.0) for s in scenes_for_test(4000, seed=3)]
    words = {w for t in texts for w in re.findall(r"[a-z]+", t.lower())}
    synonyms = [w for ws in (*phrasing.SHAPE_WORDS.values(), *phrasing.SIZE_WORDS.values()) for w in ws]
    wanted = set(re.findall(r"[a-z]+", " ".join(synonyms)))
    wanted |= {"upper", "lower", "centre", "center", "middle", "backdrop", "background", "against", "over"}
    wanted |= {"coloured", "colored"}  # British and American
    assert wanted <= words, wanted - words
    assert {p for p in scenes.POSITIONS} <= {read_position(t.lower()) for t in texts}
    assert (
        any("-" in t for t in texts) and any(";" in t for t in texts) and any(t[:1].isupper() for t in texts)
    )
    lead = [t for t in texts if re.match(r"(?i)(please draw|a picture of|draw|paint|show me)\b", t)]
    assert 0.1 < len(lead) / len(texts) < 0.4


def test_one_scene_gets_many_different_phrasings():
    s = scenes.Scene("red", "circle", "small", "top left", "blue")
    rng = random.Random(4)
    assert len({phrasing.describe(s, rng, p_empty=0.0, p_drop=0.0) for _ in range(500)}) > 300


def skeleton(text: str) -> str:
    """The sentence shape of a prompt: attribute words replaced by slots, lead-ins, articles and final stops gone."""
    t = text.lower().rstrip(".!")
    t = re.sub(
        r"^(a picture of|an image of|a drawing of|please draw|draw me|draw|paint|show me|can you draw"
        r"|i want|make)\b:? ?",
        "",
        t,
    )
    t = re.sub(r"\b(top|upper|bottom|lower)[ -](left|right)( corner)?\b|\b(center|centre|middle)\b", "P", t)
    t = re.sub(r"\b(medium-sized|mid-sized|medium size|medium|small|tiny|little|large|big|huge)\b", "Z", t)
    t = re.sub(r"\b(circle|disc|disk|square|triangle|shape)\b", "S", t)
    t = re.sub(r"\b(" + "|".join(scenes.COLOURS) + r")\b", "C", t)
    t = re.sub(r"\b(background|backdrop)\b", "N", t)
    t = re.sub(r"\b(against|over)\b", "on", t)
    t = re.sub(r"\b(colored)\b", "coloured", t)
    return re.sub(r"\b(a|an|the|one) ", "", t)


def test_training_never_samples_a_held_out_family():
    assert not set(phrasing.TRAIN_FAMILIES) & set(phrasing.HELD_OUT_FAMILIES)
    rng = random.Random(5)
    training = {skeleton(phrasing.describe(s, rng)) for s in scenes_for_test(20000, seed=5)}
    held = [{skeleton(c["prompt"]) for c in phrasing.eval_cases(held_out=True)}]
    for seed in (6, 7):  # two independent samples of the held-out families' shapes
        rng = random.Random(seed)
        held.append(
            {
                skeleton(phrasing.phrase(s.attributes(), f, rng))
                for s in scenes_for_test(1000, seed)
                for f in phrasing.HELD_OUT_FAMILIES
            }
        )
    assert len(held[1] & held[2]) > len(held[1]) / 2  # the skeleton recognises a family's shape again
    assert not training & (held[0] | held[1] | held[2]), sorted(training & (held[0] | held[1]))[:5]


def test_held_out_families_use_only_words_the_training_families_use():
    rng = random.Random(7)
    training = [phrasing.describe(s, rng, p_empty=0.0) for s in scenes_for_test(6000, seed=7)]
    held = [
        phrasing.phrase(s.attributes(), f, rng)
        for s in scenes_for_test(500)
        for f in phrasing.HELD_OUT_FAMILIES
    ]

    def words(texts):
        return {w for t in texts for w in re.findall(r"[a-z]+|[^\sa-z]", t.lower())}

    assert words(held) <= words(training), words(held) - words(training)


def test_every_word_is_one_token_and_every_prompt_fits_the_text_encoder(tmp_path):
    tok = builtin_vocab.load_tokenizer(builtin_vocab.write_tokenizer_files(tmp_path))
    for word in phrasing.VOCABULARY:
        assert len(tok(word, add_special_tokens=False).input_ids) == 1, word
    rng = random.Random(8)
    for s in scenes_for_test(300, seed=8):
        for family in phrasing.FAMILIES:
            text = phrasing.phrase(s.attributes(), family, rng, lead_in=True)
            ids = tok(text).input_ids
            assert len(ids) <= builtin_vocab.MAX_LENGTH, text
            words = re.findall(r"[a-z]+", text.lower())
            assert len(ids) == len(re.findall(r"[a-z]+|[^\sa-z]", text.lower())) + 2, text  # + start, end
            assert set(words) <= set(phrasing.VOCABULARY)


def test_growing_the_vocabulary_keeps_every_version_1_token_id(tmp_path):
    v1, merges1 = builtin_vocab.build_vocab(extra_words=())
    v2, merges2 = builtin_vocab.build_vocab()
    assert all(v2[t] == i for t, i in v1.items()) and merges2[: len(merges1)] == merges1
    assert len(v2) > len(v1) and v1[builtin_vocab.EOS] == len(v1) - 1
    tok1 = builtin_vocab.load_tokenizer(builtin_vocab.write_tokenizer_files(tmp_path / "v1", version=1))
    tok2 = builtin_vocab.load_tokenizer(builtin_vocab.write_tokenizer_files(tmp_path / "v2"))
    old = "a small red circle in the top left on a blue background"
    assert tok1(old).input_ids == tok2(old).input_ids
    assert len(tok1("tiny", add_special_tokens=False).input_ids) == 4  # letters in version 1
    assert len(tok2("tiny", add_special_tokens=False).input_ids) == 1


def test_paired_eval_cases_say_one_scene_in_a_seen_and_a_held_out_family():
    cases = phrasing.paired_eval_cases(40)
    assert len(cases) == 80 and cases == phrasing.paired_eval_cases(40)
    for seen, held in zip(cases[::2], cases[1::2], strict=True):
        assert seen["pair"] == held["pair"] and (seen["list"], held["list"]) == ("seen", "held_out")
        assert seen["family"] in phrasing.TRAIN_FAMILIES and held["family"] in phrasing.HELD_OUT_FAMILIES
        attrs = [a for a in (*scenes.ATTRIBUTES, "background") if a in seen]
        assert [seen[a] for a in attrs] == [held[a] for a in attrs] and seen["prompt"] != held["prompt"]
        for c in (seen, held):  # each prompt says its scene
            got = read(c["prompt"])
            assert (
                got["shape"] == {c["shape"]}
                and got["size"] == {c["size"]}
                and got["position"] == c["position"]
            )
            assert got["colours"] == {c["colour"], c["background"]}, c
    # the families are taken in turn: every one of both lists appears
    assert {c["family"] for c in cases} == set(phrasing.FAMILIES)


def test_eval_cases_are_fixed_full_and_cover_every_family():
    for held_out, families in ((False, phrasing.TRAIN_FAMILIES), (True, phrasing.HELD_OUT_FAMILIES)):
        cases = phrasing.eval_cases(held_out)
        assert cases == phrasing.eval_cases(held_out) and {c["family"] for c in cases} == set(families)
        for c in cases:
            got = read(c["prompt"])
            assert got["position"] == c["position"] and got["shape"] == {c["shape"]}, c
            assert (c["colour"], c["shape"], c["position"]) not in scenes.HELD_OUT
