"""Regression tests for bugs the reliability suite found in the shared code (one per behaviour)."""

from __future__ import annotations

import contextlib
import io
import threading
import time

import anyio
import pytest
from rel_files import png_text_bomb

from mcp_server.adapter import McpReporter
from tools.common import Cancelled, InvalidArgument
from tools.images import decode, open_image_input


class _Ctx:
    async def report_progress(self, done, total, message):
        return None


def _run_until_cancelled(step) -> BaseException | None:
    """Call `step()` in a worker thread until it raises; cancel the awaiting task after 0.2 s."""
    outcome: dict[str, BaseException] = {}

    def work():
        try:
            while True:
                step()
                time.sleep(0.01)
        except BaseException as exc:
            outcome["exc"] = exc
            raise

    async def main():
        with anyio.move_on_after(0.2):
            with contextlib.suppress(Exception):  # what the worker raised is in `outcome`
                await anyio.to_thread.run_sync(work)

    anyio.run(main)
    return outcome.get("exc")


def test_cancel_seen_by_check_cancelled_raises_cancelled_not_an_internal_error():
    # was: evaluating anyio.get_cancelled_exc_class() in the worker thread raised NoEventLoopError
    reporter = McpReporter(_Ctx())
    assert isinstance(_run_until_cancelled(reporter.check_cancelled), Cancelled)


def test_progress_after_a_cancel_raises_cancelled_so_a_reporting_loop_stops():
    # was: progress() never looked at cancellation, so a loop that only reported progress ran on
    reporter = McpReporter(_Ctx())
    assert isinstance(_run_until_cancelled(lambda: reporter.progress(1, 10, "x")), Cancelled)


def test_reporter_outside_a_worker_thread_is_silent():
    reporter = McpReporter(_Ctx())
    reporter.progress(1, 2, "direct call")
    reporter.check_cancelled()
    t = threading.Thread(target=reporter.check_cancelled)
    t.start()
    t.join()


def _jpeg_cut_in_header() -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 10, 10)).save(buf, format="JPEG")
    return buf.getvalue()[: len(buf.getvalue()) // 2]


def test_jpeg_truncated_inside_its_header_is_refused_naming_the_argument(tmp_path):
    # was: PIL's OSError("Truncated File Read") from Image.open escaped as an internal error
    from tools.config import LabConfig

    cfg = LabConfig.create(tmp_path / "out", [tmp_path])
    (tmp_path / "cut.jpg").write_bytes(_jpeg_cut_in_header())
    with pytest.raises(InvalidArgument) as err:
        decode(open_image_input(str(tmp_path / "cut.jpg"), cfg, "init_image").image)
    assert "init_image" in str(err.value)
    assert "truncated or corrupt" in str(err.value)


def test_png_whose_text_chunk_inflates_too_far_is_refused_naming_the_argument(tmp_path):
    # was: PIL's ValueError("Decompressed data too large...") from Image.open escaped as an internal error
    from tools.config import LabConfig

    cfg = LabConfig.create(tmp_path / "out", [tmp_path])
    (tmp_path / "ztxt.png").write_bytes(png_text_bomb())
    with pytest.raises(InvalidArgument) as err:
        open_image_input(str(tmp_path / "ztxt.png"), cfg, "image")
    assert "`image`" in str(err.value)


def test_stdio_server_exits_promptly_on_stdin_close_after_heavy_imports(tmp_path):
    # was: after a call had loaded torch/matplotlib, interpreter teardown kept the process 1.5-4 s after EOF
    import sys

    from rel_harness import make_cfg
    from rel_process import RawServer

    if "mcp_server.tool_explain" not in sys.modules and not _importable("mcp_server.tool_explain"):
        pytest.skip("explain_concept (which loads torch and matplotlib) is not present")
    server = RawServer(make_cfg(tmp_path), tmp_path, registrars=("mcp_server.tool_explain",))
    try:
        server.initialize()
        reply = server.wait_for(
            server.request("tools/call", {"name": "explain_concept", "arguments": {"concept": "relu"}}), 120
        )
        assert not reply["result"].get("isError"), reply
        t0 = time.monotonic()
        server.proc.stdin.close()  # type: ignore[union-attr]
        server.proc.wait(10)
        assert time.monotonic() - t0 < 1.0
        assert server.proc.returncode == 0
    finally:
        server.close()


def _importable(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None


def test_tensorize_refuses_a_png_without_pixel_data(tmp_path):
    # was: _single_block preset the pixel buffer, so a PNG with no IDAT chunk became an all-zero tensor
    if not _importable("tools.tensorize"):
        pytest.skip("tensorize_image not present")
    from rel_files import png_header_only

    from tools.config import LabConfig
    from tools.tensorize import TensorizeInput, run

    cfg = LabConfig.create(tmp_path / "out", [tmp_path])
    (tmp_path / "empty.png").write_bytes(png_header_only(64, 64))
    with pytest.raises(InvalidArgument) as err:
        run(TensorizeInput(image=str(tmp_path / "empty.png")), cfg)
    assert "`image`" in str(err.value)


@pytest.mark.parametrize("mode", ["L", "RGBA"])
def test_tensorize_refuses_imagenet_normalization_for_a_mode_without_three_channels(tmp_path, mode):
    # was: mode='L' or 'RGBA' with normalize='imagenet' crashed with "cannot reshape array of size 3"
    if not _importable("tools.tensorize"):
        pytest.skip("tensorize_image not present")
    from tools.tensorize import TensorizeInput

    with pytest.raises(ValueError) as err:
        TensorizeInput(image="x.png", mode=mode, normalize="imagenet")
    assert "`normalize`" in str(err.value) and mode in str(err.value)


@pytest.mark.parametrize("mode", ["legacy", "auto"])
def test_an_argument_with_100000_bad_items_gets_a_short_error(tmp_path, mode):
    # was: the SDK's validation message listed every bad item: a 17 MB isError result
    from rel_harness import DEMO_TOOL, build, in_memory, make_cfg, result_text

    with in_memory(build(make_cfg(tmp_path)), mode=mode) as client:
        result = client.call(DEMO_TOOL, {"points": list(range(100_000))})
    assert result.is_error
    text = result_text(result)
    assert "points" in text and len(text) < 5000
