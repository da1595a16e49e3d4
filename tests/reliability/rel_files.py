"""Hostile image inputs, built on disk: broken and disguised files, bombs, odd formats, and paths that try
to leave the allowed folders. Each case says whether it must be refused or may be handled."""

from __future__ import annotations

import base64
import io
import os
import struct
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

REFUSE = "refuse"  # must come back as a clear isError
EITHER = "either"  # a result or a clear isError, never an internal error


@dataclass
class Case:
    name: str
    value: str
    expect: str


def _png_bytes(size=(32, 24), mode="RGB") -> bytes:
    from PIL import Image

    im = Image.new(mode, size)
    if mode in ("RGB", "RGBA"):
        im.putdata([((x * 7) % 256, (x * 3) % 256, 90, 255)[: len(mode)] for x in range(size[0] * size[1])])
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return buf.getvalue()


def _chunk(kind: bytes, data: bytes) -> bytes:
    return (
        struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    )


def png_bomb(side: int = 30_000) -> bytes:
    """A 1-bit PNG of side x side pixels (e.g. 900 Mpx) that is only tens of KB on disk."""
    row = b"\x00" + b"\x00" * ((side + 7) // 8)
    comp = zlib.compressobj(9)
    parts = [comp.compress(row * 1000) for _ in range(side // 1000)]
    parts.append(comp.compress(row * (side % 1000)))
    parts.append(comp.flush())
    ihdr = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", b"".join(parts)) + _chunk(b"IEND", b"")
    )


def png_text_bomb() -> bytes:
    """A small valid PNG with a zTXt chunk that inflates to 64 MB of text."""
    png = _png_bytes((8, 8))
    text = zlib.compress(b"\x00" * (64 * 1024 * 1024), 9)
    ztxt = _chunk(b"zTXt", b"Comment\x00\x00" + text)
    return png[:33] + ztxt + png[33:]


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that declares width x height and carries no pixel data at all."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IEND", b"")


def build_cases(allowed: Path, outside: Path, max_file_bytes: int, max_base64: int) -> list[Case]:
    """Write the hostile files (under `allowed`, with decoys in `outside`) and return the cases."""
    from PIL import Image

    allowed.mkdir(parents=True, exist_ok=True)
    outside.mkdir(parents=True, exist_ok=True)
    good = _png_bytes()
    cases: list[Case] = []

    def put(name: str, data: bytes, expect: str) -> None:
        p = allowed / name
        p.write_bytes(data)
        cases.append(Case(name, str(p), expect))

    def save(name: str, im, expect: str = EITHER, **kw) -> None:
        buf = io.BytesIO()
        im.save(buf, **kw)
        put(name, buf.getvalue(), expect)

    # broken and disguised files
    put("truncated.png", good[: len(good) // 2], REFUSE)
    jpeg = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 10, 10)).save(jpeg, format="JPEG")
    put("truncated.jpg", jpeg.getvalue()[: len(jpeg.getvalue()) // 2], EITHER)  # PIL may pad a cut JPEG
    put("header_only.png", png_header_only(64, 64), REFUSE)
    zbuf = io.BytesIO()
    with zipfile.ZipFile(zbuf, "w") as z:
        z.writestr("a.txt", "hello" * 100)
    put("archive_named.png", zbuf.getvalue(), REFUSE)
    put("text_named.png", b"this is not an image\n" * 20, REFUSE)
    put("empty.png", b"", REFUSE)
    put("svg_named.png", b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>', REFUSE)
    put("png_magic_then_garbage.png", b"\x89PNG\r\n\x1a\n" + os.urandom(2000), REFUSE)
    # bombs: tiny files that decode to huge images, or to huge metadata
    put("bomb.png", png_bomb(30_000), REFUSE)
    put("header_bomb.png", png_header_only(100_000, 100_000), REFUSE)
    put("ztxt_bomb.png", png_text_bomb(), EITHER)
    gif_bomb = io.BytesIO()
    Image.new("P", (4, 4)).save(gif_bomb, format="GIF")
    data = bytearray(gif_bomb.getvalue())
    data[6:10] = struct.pack("<HH", 65535, 65535)  # logical screen 65535 x 65535
    put("screen_bomb.gif", bytes(data), EITHER)
    # odd but real images
    frames = [Image.new("RGB", (40, 30), c) for c in ((255, 0, 0), (0, 255, 0), (0, 0, 255))]
    save(
        "animated.gif", frames[0], format="GIF", save_all=True, append_images=frames[1:], duration=50, loop=0
    )
    im16 = Image.new("I;16", (33, 17))
    im16.putdata([i * 97 % 65536 for i in range(33 * 17)])
    save("sixteen_bit.png", im16, format="PNG")
    save("cmyk.jpg", Image.new("CMYK", (30, 20), (0, 128, 255, 10)), format="JPEG")
    save("palette_transparent.png", Image.new("P", (20, 20)), format="PNG", transparency=0)
    save("la.png", Image.new("LA", (20, 20), (100, 50)), format="PNG")
    save("float32.tiff", Image.new("F", (16, 16), 3.5), format="TIFF")
    save("one_pixel.png", Image.new("RGB", (1, 1), (1, 2, 3)), format="PNG")
    save("thin_strip.png", Image.new("L", (20_000, 1), 7), format="PNG")
    save("bmp.bmp", Image.new("RGB", (9, 7), (9, 9, 9)), format="BMP")
    save("webp.webp", Image.new("RGBA", (12, 12), (9, 9, 9, 9)), format="WEBP")
    # size caps
    put("over_file_cap.png", good + b"\x00" * (max_file_bytes + 1 - len(good)), REFUSE)
    # paths that try to leave the allowed folders
    secret = outside / "secret.png"
    secret.write_bytes(good)
    cases.append(Case("absolute_outside", str(secret), REFUSE))
    cases.append(Case("dotdot_escape", str(allowed / ".." / outside.name / "secret.png"), REFUSE))
    rel = os.path.relpath(secret, allowed)
    cases.append(Case("relative_dotdot", str(allowed / rel), REFUSE))
    cases.append(Case("etc_passwd", "/etc/passwd", REFUSE))
    cases.append(Case("dotdot_passwd", str(allowed) + "/../../../../../../etc/passwd", REFUSE))
    (allowed / "link_out.png").symlink_to(secret)
    cases.append(Case("symlink_outside", str(allowed / "link_out.png"), REFUSE))
    (allowed / "link_zero.png").symlink_to("/dev/zero")
    cases.append(Case("symlink_dev_zero", str(allowed / "link_zero.png"), REFUSE))
    (allowed / "loop_a.png").symlink_to(allowed / "loop_b.png")
    (allowed / "loop_b.png").symlink_to(allowed / "loop_a.png")
    cases.append(Case("symlink_loop", str(allowed / "loop_a.png"), REFUSE))
    (allowed / "dir.png").mkdir()
    cases.append(Case("directory", str(allowed / "dir.png"), REFUSE))
    os.mkfifo(allowed / "fifo.png")
    cases.append(Case("fifo", str(allowed / "fifo.png"), REFUSE))
    cases.append(Case("dev_zero", "/dev/zero", REFUSE))
    cases.append(Case("dev_urandom", "/dev/urandom", REFUSE))
    cases.append(Case("proc_self_mem", "/proc/self/mem", REFUSE))
    cases.append(Case("windows_drive", "C:\\Users\\me\\Pictures\\cat.png", REFUSE))
    cases.append(Case("windows_unc", "\\\\server\\share\\cat.png", REFUSE))
    cases.append(Case("windows_mixed", str(allowed) + "\\..\\..\\secret.png", REFUSE))
    cases.append(Case("nul_byte", str(allowed / "one_pixel.png") + "\x00.txt", REFUSE))
    cases.append(Case("tilde_home", "~/.ssh/id_rsa", REFUSE))
    cases.append(Case("file_url", "file://" + str(secret), REFUSE))
    cases.append(Case("resource_dotdot", "mllab://outputs/../../etc/passwd", REFUSE))
    cases.append(Case("resource_nested", "mllab://outputs/images/../../../etc/passwd", REFUSE))
    cases.append(Case("resource_missing", "mllab://outputs/images/nope.png", REFUSE))
    cases.append(Case("http_url", "http://169.254.169.254/latest/meta-data/", REFUSE))
    # inline payloads
    b64 = base64.b64encode
    cases.append(Case("data_uri_bomb", "data:image/png;base64," + b64(png_bomb(20_000)).decode(), REFUSE))
    cases.append(Case("data_uri_text", "data:text/plain;base64," + b64(b"hello").decode(), REFUSE))
    cases.append(Case("data_uri_not_base64", "data:image/png;base64,@@@@not base64@@@@", REFUSE))
    cases.append(Case("data_uri_zip", "data:image/png;base64," + b64(zbuf.getvalue()).decode(), REFUSE))
    cases.append(Case("data_uri_over_cap", "data:image/png;base64," + "A" * (max_base64 + 4), REFUSE))
    cases.append(Case("base64_truncated_png", b64(good[: len(good) // 2]).decode(), REFUSE))
    cases.append(Case("base64_text", b64(b"not an image at all " * 20).decode(), REFUSE))
    cases.append(Case("data_uri_ok", "data:image/png;base64," + b64(good).decode(), EITHER))
    return cases
