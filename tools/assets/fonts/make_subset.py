"""Rebuild the shipped CJK font subset: `python tools/assets/fonts/make_subset.py DroidSansFallbackFull.ttf`.

The source is Debian's fonts-droid-fallback (Apache-2.0): `apt-get download fonts-droid-fallback`, then
`dpkg-deb -x fonts-droid-fallback_*.deb x`; the font is x/usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf.
Kept: ASCII, Latin-1, general and CJK punctuation, full-width forms, the 3755 level-1 hanzi of GB2312 (the
commonest characters, bytes 0xB0A1-0xD7F9 of the gb2312 codec), and every non-ASCII character written anywhere
in tools/, mcp_server/, docs/, tests/ and README.md (the zh-Hans knowledge base, labels, notes, the examples).
Needs fontTools (`pyftsubset`).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
OUT = HERE / "DroidSansFallbackSubset.ttf"


def gb2312_level1() -> set[str]:
    chars = set()
    for hi in range(0xB0, 0xD8):
        for lo in range(0xA1, 0xFF):
            ch = bytes([hi, lo]).decode("gb2312", errors="ignore")  # 0xD7FA-0xD7FE are unassigned: ""
            if ch:
                chars.add(ch)
    return chars


def project_chars() -> set[str]:
    chars: set[str] = set()
    for folder in ("tools", "mcp_server", "docs", "tests", "README.md"):
        for f in sorted([ROOT / folder, *(ROOT / folder).rglob("*")]):
            if f.suffix in {".py", ".json", ".md", ".txt", ".yaml"} and f.is_file():
                chars |= {c for c in f.read_text(encoding="utf-8") if ord(c) > 0x7F}
    return chars


def wanted() -> str:
    ranges = [(0x20, 0x7E), (0xA0, 0xFF), (0x2000, 0x206F), (0x2190, 0x21FF), (0x2420, 0x2426),
              (0x3000, 0x303F), (0xFF00, 0xFFEF)]  # fmt: skip
    chars = {chr(c) for lo, hi in ranges for c in range(lo, hi + 1)}
    return "".join(sorted(chars | gb2312_level1() | project_chars()))


def main(src: str) -> None:
    text_file = HERE / ".subset_chars.txt"
    text_file.write_text(wanted(), encoding="utf-8")
    try:
        pyftsubset = Path(sys.executable).with_name("pyftsubset")
        subprocess.run(
            [str(pyftsubset), src, f"--text-file={text_file}", f"--output-file={OUT}",
             "--layout-features=*", "--no-hinting", "--desubroutinize", "--name-IDs=*", "--name-languages=*"],
            check=True,
        )  # fmt: skip
    finally:
        text_file.unlink()
    print(f"{OUT.name}: {OUT.stat().st_size / 1e6:.2f} MB", file=sys.stderr)


if __name__ == "__main__":
    main(sys.argv[1])
