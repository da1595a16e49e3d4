"""tokenize_text as steps: read the text, build or load the tokenizer, encode, describe each token, draw."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from tokenizers import Tokenizer

from tools.common import InlineImage, InvalidArgument, Reporter, ToolOutput
from tools.config import LabConfig
from tools.paths import new_output_path, output_uri, resolve_readable
from tools.tiny_gpt import corpus as corpora
from tools.tiny_gpt import store
from tools.tiny_gpt.tokenizer import learnt_merges, train_bpe
from tools.tokenize_text.schema import Token, Tokenized, TokenizeTextInput, TokenizeTextResult

BUILTIN_IMAGE_TOKENIZER = (
    Path(__file__).resolve().parents[1] / "assets" / "builtin" / "tokenizer" / "tokenizer.json"
)
MAX_LISTED = 500
MAX_FILE_CHARS = 100_000


@lru_cache(maxsize=1)
def _byte_decoder() -> dict[str, int]:
    """GPT-2's byte <-> printable-character table, inverted (byte-level tokens are spelled with it)."""
    bs = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {chr(c): b for b, c in zip(bs, cs, strict=True)}


def show_bytes(data: bytes) -> str:
    """Text if the bytes are whole UTF-8, else the bytes in hex: '<e8 8d>'."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return "<" + " ".join(f"{b:02x}" for b in data) + ">"


@dataclass
class Encoder:
    """What the tool needs from any tokenizer: a name, a vocabulary size, and text -> tokens."""

    name: str
    vocab_size: int
    library: Tokenizer | None = None  # None for the by-hand chars / bytes tokenizers
    kind: str = "chars"
    merges: list[tuple[str, str]] = field(default_factory=list)

    def encode(self, text: str) -> tuple[list[Token], int]:
        if self.kind == "chars":
            return [Token(id=ord(ch), text=ch, start=i, end=i + 1) for i, ch in enumerate(text)], 0
        if self.kind == "bytes":
            out = []
            for i, ch in enumerate(text):
                for b in ch.encode("utf-8"):
                    out.append(Token(id=b, text=show_bytes(bytes([b])), start=i, end=i + 1))
            return out, 0
        assert self.library is not None
        enc = self.library.encode(text)
        byte_level = "ByteLevel" in json.dumps(json.loads(self.library.to_str()).get("decoder"))
        unk = _unk_id(self.library)
        special = set(self.library.get_added_tokens_decoder())
        tokens = []
        for tid, piece, (start, end) in zip(enc.ids, enc.tokens, enc.offsets, strict=True):
            if byte_level and tid not in special:
                table = _byte_decoder()
                piece = show_bytes(bytes(table[c] for c in piece if c in table))
            tokens.append(
                Token(id=tid, text=piece, start=start, end=end, special=tid in special and start == end)
            )
        return tokens, sum(1 for t in tokens if t.id == unk and t.end > t.start)


def _unk_id(tok: Tokenizer) -> int | None:
    unk = json.loads(tok.to_str())["model"].get("unk_token")
    return tok.token_to_id(unk) if unk else None


def _load_json_tokenizer(path: Path, argument: str, value: str) -> Tokenizer:
    try:
        tok = Tokenizer.from_file(str(path))
    except Exception as exc:  # the library raises a bare Exception on malformed files
        raise InvalidArgument(
            argument, value, f"is not a tokenizer.json the tokenizers library can load ({exc})"
        ) from None
    tok.no_padding()  # show the tokens of the text itself, not a padded batch row
    tok.no_truncation()
    return tok


def build_encoder(args: TokenizeTextInput, cfg: LabConfig, reporter: Reporter) -> Encoder:
    kind = args.tokenizer
    if kind == "chars":
        return Encoder("characters (id = Unicode code point)", 0x110000)
    if kind == "bytes":
        return Encoder("UTF-8 bytes (id = byte value)", 256, kind="bytes")
    if kind == "bpe":
        text, what = corpora.load_corpus(
            cfg,
            corpus=args.corpus,
            text=None,
            path=args.corpus_path,
            max_chars=cfg.limits.gpt_max_corpus_chars,
        )
        reporter.progress(0, 1, f"training a byte-level BPE with {args.bpe_merges} merges on {what}")
        tok = train_bpe(text, args.bpe_merges)
        merges = learnt_merges(tok)
        return Encoder(
            f"byte-level BPE, {len(merges)} merges learnt on {what}", tok.get_vocab_size(), tok, "bpe", merges
        )
    if kind == "builtin_image":
        tok = _load_json_tokenizer(BUILTIN_IMAGE_TOKENIZER, "tokenizer", kind)
        return Encoder("the built-in image model's CLIP-style BPE", tok.get_vocab_size(), tok, "library")
    if kind == "run":
        if args.run_id is None:
            raise InvalidArgument("run_id", None, "tokenizer='run' needs the run_id of a train_tiny_gpt run")
        path = store.run_dir(cfg, args.run_id) / "tokenizer.json"
        tok = _load_json_tokenizer(path, "run_id", args.run_id)
        return Encoder(
            f"tokenizer of run {args.run_id}", tok.get_vocab_size(), tok, "library", learnt_merges(tok)
        )
    if args.tokenizer_path is None:
        raise InvalidArgument(
            "tokenizer_path", None, "tokenizer='folder' needs a tokenizer folder or tokenizer.json"
        )
    folder = corpora.resolve_dir(args.tokenizer_path, cfg, "tokenizer_path", must_exist=False)
    file = (
        (folder / "tokenizer.json")
        if folder
        else resolve_readable(args.tokenizer_path, cfg, "tokenizer_path")
    )
    if not file.is_file():
        raise InvalidArgument("tokenizer_path", args.tokenizer_path, "the folder has no tokenizer.json")
    file = resolve_readable(str(file), cfg, "tokenizer_path")
    tok = _load_json_tokenizer(file, "tokenizer_path", args.tokenizer_path)
    return Encoder(
        f"tokenizer at {args.tokenizer_path}", tok.get_vocab_size(), tok, "library", learnt_merges(tok)
    )


def describe(encoder: Encoder, text: str) -> Tokenized:
    tokens, unknown = encoder.encode(text)
    n_chars, n_bytes, n_tok = len(text), len(text.encode("utf-8")), len(tokens)
    return Tokenized(
        text=text if len(text) <= 200 else text[:200] + "...",
        tokens=tokens[:MAX_LISTED],
        n_characters=n_chars,
        n_bytes=n_bytes,
        n_tokens=n_tok,
        characters_per_token=round(n_chars / max(n_tok, 1), 3),
        bytes_per_token=round(n_bytes / max(n_tok, 1), 3),
        unknown_tokens=unknown,
    )


def tokenize_text(args: TokenizeTextInput, cfg: LabConfig, reporter: Reporter) -> ToolOutput:
    # 1. the text
    if (args.text is None) == (args.path is None):
        raise InvalidArgument("text", args.text, "give exactly one of `text` or `path`")
    if args.text is not None:
        text = corpora.check_text(args.text, "text")
    else:
        assert args.path is not None
        file = resolve_readable(args.path, cfg, "path", max_bytes=MAX_FILE_CHARS * 4)
        text = corpora.check_text(corpora.read_text_file(file, "path"), "path")
        if len(text) > MAX_FILE_CHARS:
            raise InvalidArgument(
                "path", args.path, f"holds {len(text)} characters; at most {MAX_FILE_CHARS}"
            )
    compare = corpora.check_text(args.compare_text, "compare_text") if args.compare_text is not None else None
    for name in ("corpus_path", "run_id", "tokenizer_path"):
        wanted = {"corpus_path": "bpe", "run_id": "run", "tokenizer_path": "folder"}[name]
        if getattr(args, name) is not None and args.tokenizer != wanted:
            raise InvalidArgument(name, getattr(args, name), f"applies to tokenizer='{wanted}' only")

    # 2. the tokenizer, 3. the tokens
    encoder = build_encoder(args, cfg, reporter)
    main = describe(encoder, text)
    other = describe(encoder, compare) if compare is not None else None
    merges = (
        [f"{a} + {b} -> {a}{b}" for a, b in encoder.merges[: args.show_merges]]
        if encoder.kind == "bpe"
        else []
    )

    # 4. the picture
    from tools.tokenize_text.picture import draw

    png = draw([t for t in (main, other) if t is not None], encoder.name)
    picture = new_output_path(cfg, "plots", ".png")
    picture.write_bytes(png)
    result = TokenizeTextResult(
        tokenizer=encoder.name,
        vocab_size=encoder.vocab_size,
        main=main,
        compare=other,
        first_merges=merges,
        picture_path=str(picture),
        picture_uri=output_uri(cfg, picture),
    )
    summary = _summary(result)
    return ToolOutput(result=result, images=[InlineImage(png, "tokens")], summary=summary)


def _summary(r: TokenizeTextResult) -> str:
    lines = [f"Tokenizer: {r.tokenizer} (vocabulary {r.vocab_size})."]
    for t in (r.main, r.compare):
        if t is None:
            continue
        pieces = " | ".join(tok.text for tok in t.tokens[:40]) + (" | ..." if len(t.tokens) > 40 else "")
        lines.append(
            f"{t.text[:60]!r}: {t.n_characters} characters, {t.n_bytes} bytes -> {t.n_tokens} tokens "
            f"({t.characters_per_token} characters per token): {pieces}"
        )
    if r.first_merges:
        lines.append("First merges: " + "; ".join(r.first_merges[:10]))
    return "\n".join(lines)
