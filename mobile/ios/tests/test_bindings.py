"""prescreen-ios through UniFFI's generated Python bindings, on the host: the same library and the
same exported interface the Swift bindings use. Real tract, the real test classifier, real files."""

from __future__ import annotations

import ctypes
import filecmp
import subprocess
import threading
import time
from pathlib import Path

import pytest

from conftest import ROOT

W, H = 320, 240
# BT.601 full range: a saturated red and a mid grey, as (Y, Cb, Cr).
RED, GREY = (87, 96, 223), (128, 128, 128)


def nv12(red: bool, pad: int = 0) -> tuple[bytes, int, bytes, int]:
    """A uniform NV12 frame with `pad` bytes of padding per row."""
    y, cb, cr = RED if red else GREY
    ys, cs = W + pad, W + pad
    return bytes([y]) * (ys * H), ys, bytes([cb, cr]) * (cs // 2 * (H // 2)), cs


def bgra(red: bool) -> bytes:
    return (bytes([30, 30, 220, 255]) if red else bytes([128, 128, 128, 255])) * (W * H)


class Recorder:
    """A listener that keeps every event with the thread it arrived on."""

    def __init__(self, prescreen, fail: bool = False):
        outer = self
        self.events: list = []
        self.threads: set[str] = set()

        class L(prescreen.ScreenerListener):
            def on_event(self, event):
                outer.events.append(event)
                outer.threads.add(threading.current_thread().name)
                if fail:
                    raise RuntimeError("a listener bug")

        self.listener = L()

    def of(self, kind: str) -> list:
        return [e for e in self.events if getattr(e, f"is_{kind}")()]


def config(prescreen, redness, outbox: Path, stream_id: str = "ios-test"):
    model, policy = redness
    return prescreen.ScreenerConfig(
        model_dir=str(model),
        policy_path=str(policy),
        outbox_dir=str(outbox),
        stream_id=stream_id,
        backend=prescreen.Backend.CPU,
        variant=prescreen.ModelVariant.FLOAT,
    )


def info(prescreen, t_us: int, rotation: int = 0):
    return prescreen.FrameInfo(
        width=W,
        height=H,
        rotation_degrees=rotation,
        timestamp_us=t_us,
        color_matrix=prescreen.ColorMatrix.BT601,
        color_range=prescreen.ColorRange.FULL,
    )


def stream_red_intervals(prescreen, s, intervals=((2.0, 4.0), (6.0, 7.5)), seconds=10):
    """30 fps with red during `intervals`, NV12 and BGRA alternating, fed frame by frame."""
    for i in range(seconds * 30):
        t = i * 1_000_000 // 30
        red = any(a * 1e6 <= t < b * 1e6 for a, b in intervals)
        if i % 2:
            s.submit_bgra(bgra(red), W * 4, info(prescreen, t))
        else:
            y, ys, uv, cs = nv12(red, pad=32)
            s.submit_nv12(y, ys, uv, cs, info(prescreen, t, rotation=90))
        s.wait_idle()


def test_known_red_intervals_give_their_segments_and_reports(prescreen, redness, tmp_path):
    rec = Recorder(prescreen)
    s = prescreen.Screener(config(prescreen, redness, tmp_path), rec.listener)
    assert s.labels() == ["other", "red"]
    # The policy flags only "red", as Visually Disturbing; reports carry the same name.
    assert s.categories() == [None, "Visually Disturbing"]
    stream_red_intervals(prescreen, s)
    assert len(s.pending_reports()) == 2
    m = s.close()
    assert m is not None and m.seen == 300 and m.rejected == 0
    assert m.seen == m.rejected + m.rate_skipped + m.gated + m.dropped + m.scored + m.failed
    closed = [e.segment for e in rec.of("segment_closed")]
    assert len(rec.of("segment_opened")) == 2, rec.events
    assert [c.label for c in closed] == ["red", "red"]
    for seg, (a, b) in zip(closed, [(2_000_000, 4_000_000), (6_000_000, 7_500_000)]):
        assert abs(seg.start_us - a) <= 200_000, seg
        assert abs(seg.end_us - b) <= 200_000, seg
        assert seg.peak > 0.9
    queued = rec.of("report_queued")
    assert [q.label for q in queued] == ["red", "red"]
    # Events come on the session's events thread, never the caller's.
    assert rec.threads and threading.current_thread().name not in rec.threads

    ids = [q.report_id for q in queued]
    again = prescreen.Screener(config(prescreen, redness, tmp_path, "second"), Recorder(prescreen).listener)
    assert {p.report_id for p in again.pending_reports()} == set(ids)
    report = again.read_report(ids[0])
    assert f'"report_id":"{ids[0]}"'.encode() in report and b'"stream_id":"ios-test"' in report
    assert b'"category":"Visually Disturbing"' in report
    assert again.ack(ids[0]) is True
    assert again.ack(ids[0]) is False
    assert [p.report_id for p in again.pending_reports()] == [ids[1]]
    with pytest.raises(prescreen.PrescreenError.UnknownReport):
        again.read_report(ids[0])
    again.close()
    third = prescreen.Screener(config(prescreen, redness, tmp_path, "third"), Recorder(prescreen).listener)
    assert [p.report_id for p in third.pending_reports()] == [ids[1]]
    third.close()


def test_malformed_frames_raise_invalid_frame_and_the_screener_keeps_working(prescreen, redness, tmp_path):
    s = prescreen.Screener(config(prescreen, redness, tmp_path), Recorder(prescreen).listener)
    y, ys, uv, cs = nv12(False)
    t = [0]

    def at(**changes):
        t[0] += 200_000
        i = info(prescreen, t[0])
        for k, v in changes.items():
            setattr(i, k, v)
        return i

    bad = {
        "short Y plane": lambda: s.submit_nv12(y[: len(y) // 2], ys, uv, cs, at()),
        "short chroma plane": lambda: s.submit_nv12(y, ys, uv[:10], cs, at()),
        "Y stride shorter than a row": lambda: s.submit_nv12(y, W - 1, uv, cs, at()),
        "empty planes": lambda: s.submit_nv12(b"", ys, b"", cs, at()),
        "zero width": lambda: s.submit_nv12(y, ys, uv, cs, at(width=0)),
        "absurd size": lambda: s.submit_nv12(y, ys, uv, cs, at(width=1 << 20, height=1 << 20)),
        "rotation 45": lambda: s.submit_nv12(y, ys, uv, cs, at(rotation_degrees=45)),
        "BGRA stride too small": lambda: s.submit_bgra(bgra(False), W * 3, at()),
        "short BGRA": lambda: s.submit_bgra(bgra(False)[:100], W * 4, at()),
        # Built, then refused by the engine: the same error as every other malformed frame.
        "timestamp out of range": lambda: s.submit_nv12(y, ys, uv, cs, at(timestamp_us=1 << 62)),
    }
    for name, submit in bad.items():
        with pytest.raises(prescreen.PrescreenError.InvalidFrame) as e:
            submit()
        assert str(e.value), name
        # Still working.
        r = s.submit_nv12(y, ys, uv, cs, at())
        assert r in (prescreen.SubmitResult.ACCEPTED, prescreen.SubmitResult.SKIPPED_GATE, prescreen.SubmitResult.SKIPPED_RATE), name
        s.wait_idle()
    m = s.metrics()
    assert m.rejected == len(bad) and m.seen == 2 * len(bad) and m.scored > 0
    # The runtime's MetricsSummary, field for field: every frame in one counter, both quantiles.
    assert m.seen == m.rejected + m.rate_skipped + m.gated + m.low_quality + m.dropped + m.scored + m.failed
    assert 0 < m.infer_p50_us <= m.infer_p99_us and m.preprocess_p50_us <= m.preprocess_p99_us
    # Values UniFFI itself refuses (out of the type's range) raise before reaching Rust.
    with pytest.raises((OverflowError, ValueError, TypeError)):
        s.submit_nv12(y, -1, uv, cs, at())
    with pytest.raises(prescreen.PrescreenError.InvalidArgument):
        s.ack("../../etc/passwd")
    s.close()
    cfg = config(prescreen, redness, tmp_path)
    cfg.model_dir = str(tmp_path / "missing")
    with pytest.raises(prescreen.PrescreenError.ModelLoad):
        prescreen.Screener(cfg, Recorder(prescreen).listener)
    cfg = config(prescreen, redness, tmp_path)
    cfg.policy_path = str(tmp_path / "missing.toml")
    with pytest.raises(prescreen.PrescreenError.Policy):
        prescreen.Screener(cfg, Recorder(prescreen).listener)
    for threads in (0, 17):
        cfg = config(prescreen, redness, tmp_path)
        cfg.inference_threads = threads
        with pytest.raises(prescreen.PrescreenError.InvalidArgument):
            prescreen.Screener(cfg, Recorder(prescreen).listener)


def test_callbacks_arrive_on_their_own_screeners_listener(prescreen, redness, tmp_path):
    red_rec, grey_rec = Recorder(prescreen), Recorder(prescreen)
    red = prescreen.Screener(config(prescreen, redness, tmp_path / "a", "red"), red_rec.listener)
    grey = prescreen.Screener(config(prescreen, redness, tmp_path / "b", "grey"), grey_rec.listener)

    def feed(s, intervals):
        stream_red_intervals(prescreen, s, intervals, seconds=4)

    threads = [
        threading.Thread(target=feed, args=(red, ((1.0, 3.0),))),
        threading.Thread(target=feed, args=(grey, ())),
    ]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    red.close()
    grey.close()
    assert len(red_rec.of("segment_closed")) == 1
    assert grey_rec.of("segment_opened") == [] and grey_rec.of("report_queued") == []
    assert len(red_rec.of("report_queued")) == 1
    # Each screener's events thread is its own.
    assert red_rec.threads and red_rec.threads.isdisjoint({threading.current_thread().name})


def test_close_is_idempotent_and_use_after_close_raises_closed(prescreen, redness, tmp_path):
    rec = Recorder(prescreen, fail=True)  # a listener that raises does not break the screener
    s = prescreen.Screener(config(prescreen, redness, tmp_path), rec.listener)
    stream_red_intervals(prescreen, s, ((1.0, 2.0),), seconds=3)
    errors: list = []

    def submitter():
        t = 10_000_000
        y, ys, uv, cs = nv12(False)
        while True:
            t += 33_333
            try:
                s.submit_nv12(y, ys, uv, cs, info(prescreen, t))
            except prescreen.PrescreenError.Closed:
                errors.append("closed")
                return

    racers = [threading.Thread(target=submitter) for _ in range(4)]
    for r in racers:
        r.start()
    time.sleep(0.2)
    first = s.close()
    for r in racers:
        r.join()
    assert first is not None
    assert len(errors) == 4
    assert s.close() is None
    assert len(rec.of("report_queued")) == 1  # delivered although the listener raised each time
    y, ys, uv, cs = nv12(False)
    for call in (
        lambda: s.submit_nv12(y, ys, uv, cs, info(prescreen, 1)),
        s.pending_reports,
        s.metrics,
        lambda: s.ack("0123456789abcdef0123456789abcdef"),
    ):
        with pytest.raises(prescreen.PrescreenError.Closed):
            call()


def test_committed_swift_bindings_match_the_rust_interface(tmp_path):
    """Regenerates the Swift bindings and compares them with the committed ones: a change to the
    exported interface must come with `mobile/ios/generate-bindings.sh` and its output."""
    here = ROOT / "mobile" / "ios"
    subprocess.run([str(here / "generate-bindings.sh"), str(tmp_path)], check=True)
    files = [
        "Sources/Prescreen/prescreen.swift",
        "Sources/PrescreenFFI/include/prescreenFFI.h",
        "Sources/PrescreenFFI/include/module.modulemap",
    ]
    stale = [f for f in files if not filecmp.cmp(here / f, tmp_path / f, shallow=False)]
    assert not stale, f"out of date with the Rust interface: {stale}; run mobile/ios/generate-bindings.sh"


class Pool:
    """Frame memory outside Python's bytes, as a CVPixelBuffer's is, lent with a counted lease that
    zeroes the memory when released (as a recycled buffer would be overwritten)."""

    def __init__(self, prescreen):
        self.prescreen = prescreen
        self.releases: dict[int, int] = {}

    def lease(self, key: int, *buffers):
        pool = self
        pool.releases[key] = 0

        class Lease(self.prescreen.FrameLease):
            def release(self):
                pool.releases[key] += 1
                for b in buffers:
                    ctypes.memset(b, 0, len(b))

        return Lease()


def lend_nv12(pool: Pool, s, key: int, red: bool, info_):
    y, ys, uv, cs = nv12(red, pad=32)
    yb, uvb = ctypes.create_string_buffer(y, len(y)), ctypes.create_string_buffer(uv, len(uv))
    return s.lend_nv12(
        ctypes.addressof(yb), len(y), ys, ctypes.addressof(uvb), len(uv), cs, info_, pool.lease(key, yb, uvb)
    )


def test_lent_frames_score_as_copied_ones_and_each_lease_is_released_once(prescreen, redness, tmp_path):
    def run(lent: bool, outbox: Path):
        pool = Pool(prescreen)
        rec = Recorder(prescreen)
        c = config(prescreen, redness, outbox)
        c.emit_scores = True
        s = prescreen.Screener(c, rec.listener)
        for i in range(150):
            t = i * 1_000_000 // 30
            red = 1_000_000 <= t < 2_500_000
            if i % 2 and lent:
                px = bgra(red)
                buf = ctypes.create_string_buffer(px, len(px))
                s.lend_bgra(ctypes.addressof(buf), len(px), W * 4, info(prescreen, t), pool.lease(i, buf))
            elif i % 2:
                s.submit_bgra(bgra(red), W * 4, info(prescreen, t))
            elif lent:
                lend_nv12(pool, s, i, red, info(prescreen, t, rotation=90))
            else:
                y, ys, uv, cs = nv12(red, pad=32)
                s.submit_nv12(y, ys, uv, cs, info(prescreen, t, rotation=90))
            s.wait_idle()
            # Scored or skipped, the frame is released by now, once.
            assert not lent or pool.releases[i] == 1, (i, pool.releases[i])
        m = s.close()
        assert m.seen == 150 and m.rejected == 0
        return [(e.timestamp_us, list(e.scores)) for e in rec.of("scored")], pool

    copied, _ = run(False, tmp_path / "copied")
    lent, pool = run(True, tmp_path / "lent")
    assert len(copied) >= 20
    # The same scores although every lease zeroes its frame: none was read after its release.
    assert lent == copied
    assert sorted(pool.releases) == list(range(150)) and set(pool.releases.values()) == {1}
    assert any(scores[1] > 0.9 for _, scores in copied)


def test_lent_frames_not_taken_are_released_before_the_call_raises(prescreen, redness, tmp_path):
    pool = Pool(prescreen)
    s = prescreen.Screener(config(prescreen, redness, tmp_path), Recorder(prescreen).listener)
    short = ctypes.create_string_buffer(16)
    with pytest.raises(prescreen.PrescreenError.InvalidFrame):
        s.lend_bgra(ctypes.addressof(short), 16, W * 4, info(prescreen, 0), pool.lease(0, short))
    assert pool.releases[0] == 1
    with pytest.raises(prescreen.PrescreenError.InvalidFrame, match="null"):
        s.lend_bgra(0, W * H * 4, W * 4, info(prescreen, 0), pool.lease(1))
    assert pool.releases[1] == 1
    assert s.metrics().rejected == 2
    assert lend_nv12(pool, s, 2, False, info(prescreen, 0)) == prescreen.SubmitResult.ACCEPTED
    s.close()
    assert pool.releases[2] == 1
    with pytest.raises(prescreen.PrescreenError.Closed):
        lend_nv12(pool, s, 3, False, info(prescreen, 1_000_000))
    assert pool.releases[3] == 1
