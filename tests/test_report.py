"""prf report: a self-contained HTML report of a dataset or a converted log; rendered in headless
Chromium (Debian's chromium, driven by playwright): plots and frame strips present and not blank, no
network request, no console error."""

from __future__ import annotations

import base64
import io
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import prf

pytest.importorskip("matplotlib")

from prf.report import html as report_html  # noqa: E402
from prf.report import _plots  # noqa: E402

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
SO101 = DATA / "lerobot" / "so101_wrist_v30"
ALOHA = DATA / "lerobot" / "aloha_multicam_v30"
TURTLESIM = DATA / "ros1bag" / "turtlesim_rosbagjs" / "fixtures" / "example.bag"
CHROMIUM = Path("/usr/bin/chromium")


def _run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "prf.cli", *args], capture_output=True, text=True, timeout=600)


def _sections(page: str, cls: str) -> dict[str, str]:
    out = {}
    for m in re.finditer(rf'<section class="{cls}" id="([^"]+)".*?</section>', page, re.S):
        out[m.group(1)] = m.group(0)
    return out


def _png_std(b64: str) -> float:
    from PIL import Image

    return float(np.asarray(Image.open(io.BytesIO(base64.b64decode(b64))).convert("L"), dtype=np.float64).std())


def _assert_offline(page: str) -> None:
    assert "<link" not in page and "@import" not in page and "url(" not in page
    assert not re.search(r'(src|href)="(?!data:|#)', page), re.findall(r'(?:src|href)="[^"]{0,40}', page)[:5]
    assert "http://" not in page and "https://" not in page


@pytest.fixture(scope="module")
def converted_log(module_tmp):
    pytest.importorskip("rosbags")
    sys.path.insert(0, str(Path(__file__).parent))
    import _logs

    d = module_tmp("log")
    _logs.write_ros2_bag(d / "bag")
    report = prf.convert_log(d / "bag", d / "conv", progress=False)
    assert report.complete
    return d / "conv"


@pytest.fixture(scope="module")
def aloha_report(module_tmp):
    out = module_tmp("rep") / "aloha.html"
    r = _run_cli("report", str(ALOHA), "--out", str(out), "--episodes", "0,3")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == str(out)
    return out


def test_dataset_report_contents_and_size(aloha_report):
    page = aloha_report.read_text()
    _assert_offline(page)
    meta = prf.DatasetMeta(ALOHA)
    # prf info's summary
    assert "aloha_multicam_v30" in page and "v3.0" in page and "observation.images.left_wrist" in page
    # the sortable episode table: one row per episode, a link to each detailed one
    table = re.search(r'<table class="sortable episodes">.*?</table>', page, re.S).group(0)
    assert table.count("<tr>") == len(meta.episodes) + 1
    assert 'href="#episode-0"' in table and 'href="#episode-3"' in table and 'href="#episode-1"' not in table
    assert "sharpness/observation.images.top" in table  # prf score's columns
    secs = _sections(page, "episode")
    assert set(secs) == {"episode-0", "episode-3"}
    for name, sec in secs.items():
        plots = re.findall(r'<img class="plot"[^>]*src="data:image/png;base64,([^"]+)"', sec)
        assert len(plots) == 1  # state and action share the joint names: one panel per joint, both series
        assert all(_png_std(b) > 5 for b in plots)
        for cam in meta.video_keys:
            strip = re.search(rf'<div class="strip" data-camera="{re.escape(cam)}">(.*?)</div>', sec, re.S).group(1)
            assert strip.count("data:image/jpeg;base64,") == 8
        # the size bound per episode (module docstring): measured ~270 kB for 14 joints, 3 cameras
        assert len(sec.encode()) <= report_html.MAX_EPISODE_BYTES, len(sec)
        assert "no dropped frame" in sec


def test_plots_are_labelled_with_info_json_names(monkeypatch, tmp_path):
    seen = []
    real = _plots.panels_png

    def spy(t, series, names, **kw):
        seen.append((sorted(series), list(names), t.size))
        return real(t, series, names, **kw)

    monkeypatch.setattr(_plots, "panels_png", spy)
    report_html.write_report(ALOHA, tmp_path / "r.html", episodes=[2], frames=2, validate=False, scores=False)
    meta = prf.DatasetMeta(ALOHA)
    assert seen == [(["action", "observation.state"], list(meta.features["observation.state"].names),
                     meta.episodes[2].length)]


def test_so101_report_via_the_python_api(tmp_path):
    out = prf.report.write_report(SO101, tmp_path / "so.html", episodes=[0, 3], frames=5)
    page = out.read_text()
    _assert_offline(page)
    secs = _sections(page, "episode")
    assert set(secs) == {"episode-0", "episode-3"}
    for sec in secs.values():
        assert sec.count("data:image/jpeg;base64,") == 5
        assert len(sec.encode()) <= report_html.MAX_EPISODE_BYTES
    # default: the first episodes
    page2 = report_html.write_report(SO101, tmp_path / "d.html", frames=1, validate=False, scores=False).read_text()
    assert len(_sections(page2, "episode")) == min(report_html.DEFAULT_EPISODES, 6)


def test_unknown_episode_is_an_error():
    r = _run_cli("report", str(SO101), "--out", "/dev/null", "--episodes", "0,99")
    assert r.returncode == 1 and "99" in r.stderr and "episodes table" in r.stderr
    r = _run_cli("report", str(SO101), "--episodes", "a,b")
    assert r.returncode == 2


def test_timestamp_marks():
    fps = 10.0
    ts = np.arange(20) / fps
    ts[12:] += 0.3  # 3 frames dropped between frame 11 and 12
    ts[5] += 0.02  # one timestamp off the grid (two steps touch it)
    fi = np.arange(20)
    marks, notes, gaps, dropped = report_html._timestamp_marks(ts, fi, fps, 1e-4)
    assert gaps == 3 and dropped == 3
    assert marks[-1] == pytest.approx((1.1, 1.5))
    assert "3 dropped frame(s)" in notes[-1]
    # a frame_index that skips counts its missing frames
    fi2 = np.r_[np.arange(10), np.arange(12, 22)]
    ts2 = fi2 / fps
    _, _, g2, d2 = report_html._timestamp_marks(ts2, fi2, fps, 1e-4)
    assert (g2, d2) == (1, 2)
    assert report_html._timestamp_marks(np.arange(5) / fps, np.arange(5), fps, 1e-4)[2:] == (0, 0)


def test_gaps_are_marked_in_the_report(tmp_path):
    root = prf.make_demo_dataset(tmp_path / "demo", n_episodes=2, length=30, progress=False)
    meta = prf.DatasetMeta(root)
    f = meta.path(meta.episodes[1].data_path)
    t = pq.read_table(f)
    ts = t.column("timestamp").to_numpy().copy()
    ep = t.column("episode_index").to_numpy()
    fi = t.column("frame_index").to_numpy()
    ts[(ep == 1) & (fi >= 10)] += np.float32(3 / meta.fps)  # 3 frames dropped after frame 9
    t = t.set_column(t.column_names.index("timestamp"), "timestamp", pa.array(ts, type=t.schema.field("timestamp").type))
    pq.write_table(t, f)
    page = report_html.write_report(root, tmp_path / "g.html", frames=3).read_text()
    secs = _sections(page, "episode")
    assert "no dropped frame" in secs["episode-0"]
    assert "1 timestamp gap(s), 3 dropped frame(s)" in secs["episode-1"]
    assert "frame 9 -&gt; 10" in secs["episode-1"]
    # the episode table's gaps / dropped columns
    row1 = re.search(r'<tr><td><a href="#episode-1">1</a></td>(.*?)</tr>', page).group(1)
    cells = re.findall(r"<td[^>]*>(.*?)</td>", row1)
    assert cells[3:5] == ["1", "3"]
    # prf validate's finding for that episode is counted in its row and listed
    assert "timestamps.grid" in page
    assert cells[-1] != "0"


def test_converted_log_report(converted_log, tmp_path):
    r = _run_cli("report", str(converted_log), "--out", str(tmp_path / "log.html"), "--frames", "6")
    assert r.returncode == 0, r.stderr
    page = (tmp_path / "log.html").read_text()
    _assert_offline(page)
    secs = _sections(page, "topic")
    assert set(secs) == {"topic-joint_states", "topic-cmd_vel", "topic-camera-image_raw", "topic-camera-compressed"}
    for name in ("topic-joint_states", "topic-cmd_vel"):
        plots = re.findall(r'<img class="plot"[^>]*src="data:image/png;base64,([^"]+)"', secs[name])
        assert len(plots) == 1 and _png_std(plots[0]) > 5
    for name in ("topic-camera-image_raw", "topic-camera-compressed"):
        assert secs[name].count("data:image/jpeg;base64,") == 6
        assert len(secs[name].encode()) <= report_html.MAX_EPISODE_BYTES


def test_real_log_report(tmp_path):
    pytest.importorskip("rosbags")
    conv = tmp_path / "turtle"
    prf.convert_log(TURTLESIM, conv, progress=False)
    page = report_html.write_report(conv, tmp_path / "t.html").read_text()
    _assert_offline(page)
    secs = _sections(page, "topic")
    df = prf.RoboticsDataFrame.from_converted(conv)
    assert len(secs) == len(df.topics)
    assert any('<img class="plot"' in s for s in secs.values())


# ---- headless Chromium ----------------------------------------------------------------------------------
def _chromium_or_skip():
    """playwright + Debian's chromium; in CI (.ci/run installs both) a missing piece fails the test."""
    ci = bool(os.environ.get("CI"))
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as e:
        if ci:
            pytest.fail(f"playwright is missing in CI (pip install -e '.[test]'): {e}")
        pytest.skip(f"playwright is not installed: {e}")
    if not CHROMIUM.exists():
        if ci:
            pytest.fail(f"{CHROMIUM} is missing in CI (.ci/run apt-get installs chromium)")
        pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium)")
    return sync_playwright


def _render(page_path: Path, screenshot: Path) -> dict:
    sync_playwright = _chromium_or_skip()
    requests, console = [], []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.on("request", lambda r: requests.append(r.url))
            page.on("console", lambda m: console.append((m.type, m.text)))
            page.on("pageerror", lambda e: console.append(("pageerror", str(e))))
            page.goto(page_path.resolve().as_uri(), wait_until="load")
            for attempt in range(3):  # a loaded machine's compositor sometimes fails a capture: retry
                try:
                    page.screenshot(path=str(screenshot), full_page=True)
                    break
                except Exception:  # noqa: BLE001 - playwright's Error ("Unable to capture screenshot")
                    if attempt == 2:
                        raise
                    page.wait_for_timeout(500)
            from PIL import Image

            shot = np.asarray(Image.open(screenshot).convert("L"), dtype=np.float64)
            dpr = page.evaluate("window.devicePixelRatio")
            scroll = page.evaluate("[document.documentElement.scrollWidth, document.documentElement.scrollHeight]")

            def region_std(el) -> float:
                box = el.bounding_box()  # viewport coordinates; the full-page shot starts at scroll 0
                sy = page.evaluate("window.scrollY")
                sx = page.evaluate("window.scrollX")
                x0, y0 = int((box["x"] + sx) * dpr), int((box["y"] + sy) * dpr)
                x1, y1 = int((box["x"] + sx + box["width"]) * dpr), int((box["y"] + sy + box["height"]) * dpr)
                assert box["width"] > 20 and box["height"] > 20, box
                return float(shot[y0:y1, x0:x1].std())

            imgs = page.query_selector_all("img.plot")
            strips = page.query_selector_all("div.strip")
            result = {
                "plots": [region_std(el) for el in imgs],
                "plots_loaded": [page.evaluate("e => e.complete && e.naturalWidth > 0", el) for el in imgs],
                "strips": [region_std(el) for el in strips],
                "strip_images_loaded": page.evaluate(
                    "Array.from(document.querySelectorAll('div.strip img')).every(i => i.complete && i.naturalWidth > 0)"),
                "scroll": scroll,
            }
            table = page.query_selector("table.sortable")
            if table is not None:  # the table sorts on a click: by length, then reversed
                col = page.evaluate("t => Array.from(t.tHead.rows[0].cells).map(c => c.textContent)", table)
                j = col.index("length") if "length" in col else col.index("messages")
                header = table.query_selector_all("th")[j]
                header.click()
                asc = page.evaluate(f"t => Array.from(t.tBodies[0].rows).map(r => parseFloat(r.cells[{j}].textContent))", table)
                header.click()
                desc = page.evaluate(f"t => Array.from(t.tBodies[0].rows).map(r => parseFloat(r.cells[{j}].textContent))", table)
                result["sorted"] = (asc, desc)
        finally:
            browser.close()
    result["requests"] = requests
    result["console"] = console
    return result


def _check_render(r: dict, page_path: Path, n_plots: int, n_strips: int) -> None:
    assert r["requests"] == [page_path.resolve().as_uri()], r["requests"]  # no network request at all
    assert not [c for c in r["console"] if c[0] in ("error", "pageerror")], r["console"]
    assert len(r["plots"]) == n_plots and all(r["plots_loaded"])
    assert len(r["strips"]) == n_strips and r["strip_images_loaded"]
    assert min(r["plots"]) > 5, r["plots"]  # not blank: pixel std in the element's screenshot region
    assert min(r["strips"]) > 5, r["strips"]
    assert r["scroll"][0] <= 1400 + 2  # the page does not overflow the viewport's width
    asc, desc = r["sorted"]
    assert asc == sorted(asc) and desc == sorted(asc, reverse=True)


def test_report_renders_in_headless_chromium(aloha_report, tmp_path):
    r = _render(aloha_report, tmp_path / "aloha.png")
    _check_render(r, aloha_report, n_plots=2, n_strips=6)


def test_log_report_renders_in_headless_chromium(converted_log, tmp_path):
    out = report_html.write_report(converted_log, tmp_path / "log.html")
    r = _render(out, tmp_path / "log.png")
    _check_render(r, out, n_plots=2, n_strips=2)


# ---- invariants (hypothesis) ------------------------------------------------------------------------------
from hypothesis import given, settings, strategies as st  # noqa: E402

from prf.report import _frames  # noqa: E402


@settings(max_examples=60, deadline=None)
@given(n=st.integers(3, 400), drops=st.sets(st.integers(1, 398), max_size=30), fps=st.sampled_from([10.0, 30.0, 50.0]))
def test_dropped_frames_are_counted_exactly(n, drops, fps):
    keep = np.array([i for i in range(n) if i not in drops or i == n - 1], dtype=np.int64)
    ts = (keep / fps).astype(np.float32)  # stored as LeRobot stores them
    fi = np.arange(keep.size)  # frame_index itself continuous: only the timestamps show the drops
    removed = sum(1 for i in drops if 0 < i < n - 1)
    _, _, gaps, dropped = report_html._timestamp_marks(ts, fi, fps, 1e-4)
    assert dropped == removed
    runs = np.count_nonzero(np.diff(keep) > 1)
    assert gaps == runs


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 20000), max_points=st.integers(4, 3000))
def test_downsample_bounds_points_and_keeps_extremes(n, max_points):
    rng = np.random.default_rng(n)
    t = np.arange(n, dtype=np.float64)
    y = rng.normal(size=n)
    tt, yy = _plots.downsample(t, y, max_points)
    assert tt.size == yy.size <= max(max_points, 1) and (np.diff(tt) > 0).all()
    assert yy.max() == y.max() and yy.min() == y.min()


@given(n=st.integers(0, 5000), k=st.integers(0, 40))
def test_evenly_spaced_frames(n, k):
    pos = _frames.evenly_spaced(n, k)
    assert pos.size == min(n, k, _frames.MAX_FRAMES)
    assert (np.diff(pos) > 0).all() and (pos.size == 0 or (pos[0] == 0 and pos[-1] <= n - 1))
    if min(n, k, _frames.MAX_FRAMES) >= 2:
        assert pos[-1] == n - 1
