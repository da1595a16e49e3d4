"""A generated grammar of everyday phrasings for the built-in model's scenes, in named families.

People do not write "a small red circle in the top left on a blue background"; they write "blue backdrop;
red circle, small, lower left" or "Please draw a tiny red disc in the upper-left corner, against blue."
This module turns a scene's attributes into such prompts: free word order, synonyms (tiny/little/small,
upper/top, centre/center/middle, backdrop/background, on/against/over), British and American spelling
(colour/color, centre/center, disc/disk), articles, punctuation and optional lead-ins ("a picture of").

Each phrasing FAMILY is one sentence shape. TRAIN_FAMILIES are what the training script samples;
HELD_OUT_FAMILIES never reach training and measure whether the model learnt the words or only the
templates (bench/bench_adherence.py reports them apart). Held-out families use no word that the
training families lack, only new orders and combinations. numpy/stdlib only: no torch at import.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable

from tools import scenes

# ---------------------------------------------------------------- synonyms, per attribute value

SHAPE_WORDS: dict[str, tuple[str, ...]] = {
    "circle": ("circle", "circle", "disc", "disk"),
    "square": ("square",),
    "triangle": ("triangle",),
}
SIZE_WORDS: dict[str, tuple[str, ...]] = {
    "small": ("small", "tiny", "little"),
    "medium": ("medium", "medium-sized", "mid-sized", "medium size"),
    "large": ("large", "big", "huge"),
}
VERTICAL = {"top": ("top", "upper"), "bottom": ("bottom", "lower")}
CENTRE_WORDS = ("center", "centre", "middle")
BACKGROUND_NOUNS = ("background", "backdrop")
BACKGROUND_PREPOSITIONS = ("on", "against", "over")
COLOURED = ("coloured", "colored")  # British, American
LEAD_INS = (
    "a picture of",
    "an image of",
    "a drawing of",
    "please draw",
    "draw",
    "draw me",
    "paint",
    "show me",
    "can you draw",
    "i want",
    "make",
)
# words the grammar uses beyond the attribute values and their synonyms
GLUE = ("a", "an", "the", "in", "at", "on", "with", "of", "is", "corner", "it", "put", "one")


def colour_words(colour: str) -> tuple[str, ...]:
    return (colour,)


def position_words(position: str) -> tuple[str, ...]:
    """Every spelling of a position without preposition: 'upper-left corner', 'top left', 'centre'."""
    if position == "center":
        return CENTRE_WORDS
    v, h = position.split()
    return tuple(f"{w}{j}{h}{c}" for w in VERTICAL[v] for j in (" ", "-") for c in ("", " corner"))


def _article(word: str, rng: random.Random, p_none: float = 0.2) -> str:
    """'a'/'an' as English wants it, sometimes 'one' or 'the', sometimes none (people drop it)."""
    r = rng.random()
    if r < p_none:
        return ""
    if r < p_none + 0.05:
        return "one "
    return ("an " if word[0] in "aeiou" else "a ") if r < 0.9 else "the "


# ---------------------------------------------------------------- phrase builders


class Phrase:
    """The pieces of one prompt, chosen once so every family words the same scene consistently."""

    def __init__(self, attrs: dict[str, str | None], rng: random.Random):
        self.rng = rng
        self.attrs = attrs
        get = attrs.get
        self.colour = rng.choice(colour_words(get("colour"))) if get("colour") else None  # type: ignore[arg-type]
        self.shape = rng.choice(SHAPE_WORDS[get("shape")]) if get("shape") else None  # type: ignore[index]
        self.size = rng.choice(SIZE_WORDS[get("size")]) if get("size") else None  # type: ignore[index]
        self.position = get("position")
        self.pos_bare = rng.choice(position_words(self.position)) if self.position else None
        self.bg = get("background")
        self.bg_noun = rng.choice(BACKGROUND_NOUNS)

    def noun(self) -> str:
        return self.shape or "shape"

    def obj(self, article: bool = True) -> str:
        """'a tiny red disc': size, colour, shape (shape falls back to 'shape' when dropped)."""
        words = " ".join(w for w in (self.size, self.colour, self.noun()) if w)
        return _article(words, self.rng) + words if article else words

    def pos_prep(self) -> str | None:
        """'in the upper-left corner', 'at the top left', 'in the centre', 'top right'."""
        if not self.pos_bare:
            return None
        prep = self.rng.choice(("in the ", "in the ", "at the ", ""))
        if self.position == "center" and self.pos_bare != "middle" and self.rng.random() < 0.3:
            prep = ""  # "a red circle, centre"
        return prep + self.pos_bare

    def bg_prep(self) -> str | None:
        """'on a blue background', 'against blue', 'over a blue backdrop', 'with a blue background'."""
        if not self.bg:
            return None
        r = self.rng.random()
        prep = self.rng.choice(BACKGROUND_PREPOSITIONS)
        if r < 0.45:
            return f"{prep} {_article(self.bg, self.rng, p_none=0.1)}{self.bg} {self.bg_noun}"
        if r < 0.8:
            return f"{prep} {self.bg}"
        return f"with {_article(self.bg, self.rng, p_none=0.1)}{self.bg} {self.bg_noun}"

    def bg_bare(self) -> str | None:
        return f"{self.bg} {self.bg_noun}" if self.bg else None

    def join(self, parts: list[str | None], seps: tuple[str, ...] = (" ", ", ")) -> str:
        """The kept parts, joined by one separator drawn from seps."""
        return self.rng.choice(seps).join(p for p in parts if p)


# ---------------------------------------------------------------- the families


def classic(p: Phrase) -> str:
    """'a small red circle in the top left on a blue background' (with synonyms)."""
    return p.join([p.obj(), p.pos_prep(), p.bg_prep()])


def background_first(p: Phrase) -> str:
    """'on a blue backdrop, a tiny red disc at the upper left'."""
    return p.join([p.bg_prep(), p.join([p.obj(), p.pos_prep()], (" ",))], (", ", " "))


def position_first(p: Phrase) -> str:
    """'in the top-left corner, a small red circle against blue'."""
    return p.join([p.pos_prep(), p.join([p.obj(), p.bg_prep()], (" ", ", "))], (", ",))


def comma_list(p: Phrase) -> str:
    """'small red circle, top left, blue background'."""
    return p.join([p.obj(article=p.rng.random() < 0.3), p.pos_bare, p.bg_bare()], (", ",))


def size_after(p: Phrase) -> str:
    """'a purple triangle, medium, center, on red'."""
    words = " ".join(w for w in (p.colour, p.noun()) if w)
    bg = f"{p.rng.choice(BACKGROUND_PREPOSITIONS)} {p.bg}" if p.bg else None
    return p.join([_article(words, p.rng) + words, p.size, p.pos_bare, bg], (", ",))


def with_background(p: Phrase) -> str:
    """'a blue background with a small red circle in the top left'."""
    bg = f"{_article(p.bg, p.rng, p_none=0.3)}{p.bg} {p.bg_noun}" if p.bg else None
    if bg is None:
        return p.join([p.obj(), p.pos_prep()], (" ",))
    return bg + " with " + p.join([p.obj(), p.pos_prep()], (" ",))


def two_sentences(p: Phrase) -> str:
    """'a small red circle in the top left. the background is blue.'."""
    first = p.join([p.obj(), p.pos_prep()], (" ",))
    second = f"the {p.bg_noun} is {p.bg}" if p.bg else None
    return p.join([first, second], (". ", "; "))


def coloured(p: Phrase) -> str:
    """'a small circle coloured red at the top left over blue', 'a big square in green, centre'."""
    obj = " ".join(w for w in (p.size, p.noun()) if w)
    if p.colour:
        obj += " " + p.rng.choice(COLOURED + ("in",)) + " " + p.colour
    return p.join([_article(obj, p.rng) + obj, p.pos_prep(), p.bg_prep()], (" ", ", "))


def put_it(p: Phrase) -> str:
    """'draw a small red circle and put it in the top left, on blue' (instruction)."""
    where = p.pos_prep()
    first = p.obj() + (f", put it {where}" if where else "")
    return p.join([first, p.bg_prep()], (", ", " "))


def coloured_last(p: Phrase) -> str:
    """'a big disk at the top left on purple, coloured white', 'a square, centre, over blue, colored red'."""
    obj = " ".join(w for w in (p.size, p.noun()) if w)
    colour = f"{p.rng.choice(COLOURED)} {p.colour}" if p.colour else None
    return p.join([_article(obj, p.rng) + obj, p.pos_prep(), p.bg_prep(), colour], (" ", ", "))


def free_order(p: Phrase) -> str:
    """The three clauses in any order: 'against blue, in the lower left, a small red circle'."""
    parts = [p.obj(), p.pos_prep(), p.bg_prep()]
    p.rng.shuffle(parts)
    return p.join(parts, (", ", " "))


def it_is(p: Phrase) -> str:
    """'a big circle in the top left on purple. it is white.' (the colour said in its own sentence)."""
    obj = " ".join(w for w in (p.size, p.noun()) if w)
    first = p.join([_article(obj, p.rng) + obj, p.pos_prep(), p.bg_prep()], (" ", ", "))
    return p.join([first, f"it is {p.colour}" if p.colour else None], (". ", "; ", ", "))


def v1_templates(p: Phrase) -> str:
    """The original training templates (tools/scenes.py) with canonical words, so old prompts keep working."""
    t = p.rng.choice(scenes._TEMPLATES)
    obj = " ".join(
        w for w in (p.attrs.get("size"), p.attrs.get("colour"), p.attrs.get("shape") or "shape") if w
    )
    if p.position is None:
        t = t.replace(" in the {pos}", "").replace(" at the {pos}", "").replace(", {pos}", "")
        t = t.replace("in the {pos}, ", "").replace(" in {pos}", "")
    if p.bg is None:
        for clause in (
            " on a {bg} background",
            ", {bg} background",
            "on a {bg} background, ",
            "{bg} background with ",
            " on {bg} background",
            "a {bg} background and ",
        ):
            t = t.replace(clause, "")
    return t.format(obj=obj, pos=p.position, bg=p.bg)


# held out: never sampled for training; every word in them is also used by a training family
def backdrop_semicolon(p: Phrase) -> str:
    """'blue backdrop; red circle, small, lower left'."""
    words = " ".join(w for w in (p.colour, p.noun()) if w)
    return p.join([p.bg_bare(), p.join([words, p.size, p.pos_bare], (", ",))], ("; ",))


def shape_first(p: Phrase) -> str:
    """'triangle, purple, medium, centre, on red'."""
    bg = f"{p.rng.choice(BACKGROUND_PREPOSITIONS)} {p.bg}" if p.bg else None
    return p.join([p.noun(), p.colour, p.size, p.pos_bare, bg], (", ",))


def background_sentence_first(p: Phrase) -> str:
    """'the backdrop is green. a big yellow square in the lower right.'."""
    first = f"the {p.bg_noun} is {p.bg}" if p.bg else None
    return p.join([first, p.join([p.obj(), p.pos_prep()], (" ",))], (". ", "; "))


def position_colour_last(p: Phrase) -> str:
    """'in the lower-left corner, over a white backdrop: a large square coloured green'."""
    obj = " ".join(w for w in (p.size, p.noun()) if w)
    obj = _article(obj, p.rng) + obj + (f" {p.rng.choice(COLOURED)} {p.colour}" if p.colour else "")
    head = p.join([p.pos_prep(), p.bg_prep()], (", ",))
    return p.join([head, obj], (": ", ", "))


Family = Callable[[Phrase], str]
TRAIN_FAMILIES: dict[str, Family] = {
    "classic": classic,
    "background_first": background_first,
    "position_first": position_first,
    "comma_list": comma_list,
    "size_after": size_after,
    "with_background": with_background,
    "two_sentences": two_sentences,
    "coloured": coloured,
    "put_it": put_it,
    "coloured_last": coloured_last,
    "free_order": free_order,
    "it_is": it_is,
    "v1_templates": v1_templates,
}
HELD_OUT_FAMILIES: dict[str, Family] = {
    "backdrop_semicolon": backdrop_semicolon,
    "shape_first": shape_first,
    "background_sentence_first": background_sentence_first,
    "position_colour_last": position_colour_last,
}
FAMILIES: dict[str, Family] = {**TRAIN_FAMILIES, **HELD_OUT_FAMILIES}

# every word the grammar can produce (the tokenizer makes each one token)
VOCABULARY: tuple[str, ...] = tuple(
    dict.fromkeys(
        w
        for phrase in (
            *scenes.VOCABULARY,
            *(w for ws in SHAPE_WORDS.values() for w in ws),
            *(w for ws in SIZE_WORDS.values() for w in ws),
            *(w for ws in VERTICAL.values() for w in ws),
            *CENTRE_WORDS,
            *BACKGROUND_NOUNS,
            *BACKGROUND_PREPOSITIONS,
            *COLOURED,
            *LEAD_INS,
            *GLUE,
        )
        for w in re.findall(r"[a-z]+", phrase)
    )
)


def phrase(attrs: dict[str, str | None], family: str, rng: random.Random, lead_in: bool | None = None) -> str:
    """One prompt for the attributes (None = not said) in the named family."""
    p = Phrase(attrs, rng)
    text = FAMILIES[family](p)
    if lead_in is None:
        lead_in = rng.random() < 0.25
    if lead_in and family != "v1_templates":
        lead = rng.choice(LEAD_INS)
        if text.startswith(("a ", "an ", "the ", "one ")) or lead in ("i want", "make", "show me"):
            text = f"{lead} {text}"
        else:
            text = (
                f"{lead} {text}" if lead.startswith(("please", "draw", "paint", "can")) else f"{lead}: {text}"
            )
    if rng.random() < 0.25:
        text += rng.choice((".", ".", "!"))
    if rng.random() < 0.3:
        text = text[:1].upper() + text[1:]
    return text


def describe(
    scene: scenes.Scene,
    rng: random.Random,
    families: tuple[str, ...] = tuple(TRAIN_FAMILIES),
    p_empty: float = 0.1,
    p_drop: float = 0.12,
) -> str:
    """A training prompt: a random training family, attributes dropped at random, sometimes empty (for CFG)."""
    if rng.random() < p_empty:
        return ""
    attrs: dict[str, str | None] = {
        a: (v if rng.random() >= p_drop else None) for a, v in scene.attributes().items()
    }
    return phrase(attrs, rng.choice(families), rng)


def eval_cases(held_out: bool, per_family: int = 16, seed: int = 4321) -> list[dict[str, str]]:
    """Fixed evaluation list for the seen or the held-out families: full prompts, seen attribute combinations.

    Each case: the expected attributes plus "prompt" and "family". Scenes never use scenes.HELD_OUT
    combinations, so the phrasing alone differs between the two lists.
    """
    families = HELD_OUT_FAMILIES if held_out else TRAIN_FAMILIES
    cases = []
    for k, family in enumerate(sorted(families)):
        rng = random.Random(seed + 1000 * k + (500 if held_out else 0))
        for _ in range(per_family):
            attrs = scenes.sample_scene(rng, jitter=False).attributes()
            text = phrase(dict(attrs), family, rng)
            cases.append({**attrs, "prompt": text, "family": family})
    return cases


def paired_eval_cases(n_scenes: int = 128, seed: int = 8765) -> list[dict[str, str]]:
    """The same scenes said twice: once in a seen family, once in a held-out one (families taken in turn).

    eval_cases draws other scenes for each list, so the two lists differ in their mix too (more small squares,
    the hardest shape, in one than the other); here only the phrasing differs within a pair. Cases come in
    pairs, seen first: each holds the expected attributes, "prompt", "family", "list" (seen / held_out), "pair".
    """
    rng = random.Random(seed)
    seen, held = sorted(TRAIN_FAMILIES), sorted(HELD_OUT_FAMILIES)
    cases = []
    for k in range(n_scenes):
        attrs = scenes.sample_scene(rng, jitter=False).attributes()
        for name, family in (("seen", seen[k % len(seen)]), ("held_out", held[k % len(held)])):
            text = phrase(dict(attrs), family, rng)
            cases.append({**attrs, "prompt": text, "family": family, "list": name, "pair": str(k)})
    return cases
