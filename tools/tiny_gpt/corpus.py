"""Training text: the built-in corpora the project makes itself, the caller's inline text, or .txt/.md files.

Built-in corpora are generated at call time from data that already ships (the concept knowledge base) or from
a fixed-seed generator (arithmetic, names), so nothing extra is downloaded or stored.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from tools.common import InvalidArgument
from tools.config import LabConfig

BUILTIN_CORPORA = ("concepts_en", "concepts_zh", "arithmetic", "names")
MAX_FILES = 500
CONCEPTS_DIR = Path(__file__).resolve().parents[1] / "data" / "concepts"


def _concepts(lang: str) -> str:
    """Every concept's name, summary, explanation and analogy, one paragraph each, in one language."""
    parts = []
    for path in sorted(CONCEPTS_DIR.glob("*.json")):
        for c in json.loads(path.read_text(encoding="utf-8")):
            parts.append(
                f"{c['names'][lang]}: {c['summary'][lang]}\n{c['explanation'][lang]}\n{c['analogy'][lang]}\n"
            )
    return "\n".join(parts)


def _arithmetic(n: int = 6000, seed: int = 1337) -> str:
    """Lines like '12+7=19' and '30-8=22' (operands 0-99)."""
    rng = random.Random(seed)
    lines = []
    for _ in range(n):
        a, b = rng.randrange(100), rng.randrange(100)
        if rng.random() < 0.5:
            lines.append(f"{a}+{b}={a + b}")
        else:
            a, b = max(a, b), min(a, b)
            lines.append(f"{a}-{b}={a - b}")
    return "\n".join(lines) + "\n"


_ONSETS = [
    "b",
    "br",
    "c",
    "ch",
    "d",
    "dr",
    "f",
    "g",
    "gr",
    "h",
    "j",
    "k",
    "kl",
    "l",
    "m",
    "n",
    "p",
    "pr",
    "r",
    "s",
    "sh",
    "st",
    "t",
    "th",
    "tr",
    "v",
    "w",
    "z",
]
_VOWELS = ["a", "e", "i", "o", "u", "ai", "ea", "ie", "oa", "ou", "y"]
_CODAS = ["", "", "", "n", "r", "l", "s", "th", "nd", "x", "ck"]


def _names(n: int = 8000, seed: int = 1337) -> str:
    """Made-up names of 2-3 syllables, one a line (a makemore-style corpus with no real data)."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        syllables = rng.choice((2, 2, 3))
        name = "".join(rng.choice(_ONSETS) + rng.choice(_VOWELS) for _ in range(syllables)) + rng.choice(
            _CODAS
        )
        out.append(name)
    return "\n".join(out) + "\n"


def builtin_corpus(name: str) -> str:
    if name == "concepts_en":
        return _concepts("en")
    if name == "concepts_zh":
        return _concepts("zh")
    if name == "arithmetic":
        return _arithmetic()
    if name == "names":
        return _names()
    raise InvalidArgument("corpus", name, f"built-in corpora are {', '.join(BUILTIN_CORPORA)}")


def check_text(text: str, argument: str) -> str:
    """Refuse empty text and text that looks binary (NUL or many control characters)."""
    if not text.strip():
        raise InvalidArgument(argument, text, "must contain some non-whitespace text")
    controls = sum(1 for ch in text if ord(ch) < 32 and ch not in "\n\r\t")
    if "\x00" in text or controls > max(8, len(text) // 100):
        raise InvalidArgument(
            argument, text[:40], f"looks binary ({controls} control characters); give UTF-8 text"
        )
    return text


def read_text_file(path: Path, argument: str) -> str:
    try:
        return path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidArgument(
            argument, str(path), f"is not UTF-8 text ({exc.reason} at byte {exc.start})"
        ) from None


def read_corpus_path(value: str, cfg: LabConfig, argument: str, max_chars: int) -> str:
    """A .txt/.md file, or every .txt/.md file under a folder (sorted), inside the allowed folders."""
    from tools.paths import resolve_readable

    folder = resolve_dir(value, cfg, argument, must_exist=False)
    if folder is None:
        files = [resolve_readable(value, cfg, argument)]
    else:
        files = sorted(p for p in folder.rglob("*") if p.suffix in (".txt", ".md") and p.is_file())[
            : MAX_FILES + 1
        ]
        if not files:
            raise InvalidArgument(argument, value, "the folder holds no .txt or .md file")
        if len(files) > MAX_FILES:
            raise InvalidArgument(argument, value, f"the folder holds more than {MAX_FILES} .txt/.md files")
        files = [resolve_readable(str(p), cfg, argument) for p in files]
    text, total = [], 0
    for f in files:
        total += f.stat().st_size
        if total > max_chars * 4:
            raise InvalidArgument(
                argument, value, f"more than {max_chars} characters of text (the server's cap)"
            )
        text.append(read_text_file(f, argument))
    return "\n".join(text)


def resolve_dir(value: str, cfg: LabConfig, argument: str, must_exist: bool = True) -> Path | None:
    """A folder inside the allowed folders, or None when `value` is not a folder (and must_exist is False)."""
    if not value or "\x00" in value:
        raise InvalidArgument(argument, value, "must be a non-empty path without NUL bytes")
    try:
        resolved = Path(value).expanduser().resolve(strict=True)
    except (OSError, RuntimeError):
        if must_exist:
            raise InvalidArgument(argument, value, "no such folder") from None
        return None
    if not resolved.is_dir():
        if must_exist:
            raise InvalidArgument(argument, value, "is not a folder")
        return None
    if not any(resolved.is_relative_to(root) for root in cfg.allowed_dirs):
        allowed = ", ".join(str(p) for p in cfg.allowed_dirs)
        raise InvalidArgument(
            argument, value, f"resolves to {resolved}, outside the allowed folders ({allowed})"
        )
    return resolved


def load_corpus(
    cfg: LabConfig, *, corpus: str | None, text: str | None, path: str | None, max_chars: int
) -> tuple[str, str]:
    """(text, description) from exactly one of: inline text, a path, a built-in corpus name."""
    given = [n for n, v in (("text", text), ("corpus_path", path)) if v is not None]
    if len(given) > 1:
        raise InvalidArgument(given[1], "given", f"give one source of text, not both {' and '.join(given)}")
    if text is not None:
        out, what = check_text(text, "text"), f"inline text ({len(text)} characters)"
        argument = "text"
    elif path is not None:
        out, what = check_text(read_corpus_path(path, cfg, "corpus_path", max_chars), "corpus_path"), path
        argument = "corpus_path"
    else:
        name = corpus or "concepts_en"
        out, what = builtin_corpus(name), f"built-in corpus {name}"
        argument = "corpus"
    if len(out) > max_chars:
        raise InvalidArgument(
            argument, f"{len(out)} characters", f"at most {max_chars} characters (the server's cap)"
        )
    return out, what
