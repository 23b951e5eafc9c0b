"""End to end: ``rodentseg app`` in a real headless Chromium (Debian's chromium + chromedriver).

Starts the app as a user would (``python -m rodentseg.cli app`` on a free port, default model,
data root ../shared/data), opens the tracktor video by path, clicks on the mouse where the
model finds it on frame 0, checks the mask through the app's frame-info field, propagates 30
frames, saves, and checks the saved masks on disk and the masks.json download. A second tab
checks that another session sees none of it and that a path outside the data root is refused.
The browser resolves no host name but 127.0.0.1, so the page cannot reach the internet.
A screenshot goes to ``$RODENTSEG_ARTIFACTS`` (else the test's tmp folder); the path, the
click latency and the run time are printed (``pytest -s`` shows them).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[2]
DATA = (REPO / ".." / "shared" / "data").resolve()
VIDEO_REL = "tracktor-mice/mouse_video.mp4"
CHROMEDRIVER = Path("/usr/bin/chromedriver")
CHROMIUM = next((Path(p) for p in ("/usr/lib/chromium/chromium", "/usr/bin/chromium")
                 if Path(p).exists()), None)

webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed")
pytestmark = [
    pytest.mark.slow,  # about 80 s here: the app's start-up (gradio, torch) is half of it
    pytest.mark.skipif(not (DATA / VIDEO_REL).exists(), reason=f"test data {DATA} not present"),
    pytest.mark.skipif(not CHROMEDRIVER.exists() or CHROMIUM is None,
                       reason="needs Debian's chromium and chromium-driver "
                              "(apt-get install chromium chromium-driver)"),
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def app_url(tmp_path):
    """The app served by a subprocess; yields (url, log path, --out folder)."""
    port, log, out = _free_port(), tmp_path / "app.log", tmp_path / "out"
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1",
           "OMP_NUM_THREADS": "1", "NO_PROXY": "127.0.0.1,localhost"}
    with log.open("w") as f:
        proc = subprocess.Popen([sys.executable, "-m", "rodentseg.cli", "app", "--data-root",
                                 str(DATA), "--port", str(port), "--out", str(out)],
                                stdout=f, stderr=subprocess.STDOUT, env=env, cwd=tmp_path)
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.time() + 300  # a loaded 2-core machine: imports alone can take a minute
        while True:
            if proc.poll() is not None:
                pytest.fail(f"the app exited ({proc.returncode}):\n{log.read_text()}")
            try:
                urllib.request.urlopen(url, timeout=2)
                break
            except OSError:
                if time.time() > deadline:
                    pytest.fail(f"the app did not answer within 300 s:\n{log.read_text()}")
                time.sleep(0.5)
        yield url, log, out
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture
def driver():
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = str(CHROMIUM)
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1400,1600", "--no-first-run",
                "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1"):
        opts.add_argument(arg)
    d = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=opts)
    d.set_page_load_timeout(60)
    yield d
    d.quit()


def _mouse_pixel() -> tuple[int, int]:
    """A pixel inside the mouse on frame 0, from the default model (nearest to its centroid)."""
    from rodentseg.annotate.frames import FrameSource
    from rodentseg.models import load_model
    from rodentseg.track.instances import split_instances

    model = load_model("rodentseg-tiny", "cpu")
    prob = model.predict(FrameSource(DATA / VIDEO_REL).frame(0)[None])[0]
    mask = split_instances(prob, model.pre.threshold, 1).masks[0]
    ys, xs = np.nonzero(mask)
    k = np.argmin((xs - xs.mean()) ** 2 + (ys - ys.mean()) ** 2)
    return int(xs[k]), int(ys[k])


def _value(d, elem_id: str) -> str:
    return d.execute_script(
        "const e = document.querySelector(arguments[0]);"
        "return e ? e.value : null;", f"#{elem_id} textarea, #{elem_id} input")


def _info(d) -> dict:
    text = _value(d, "mask-info")
    return json.loads(text) if text else {}


def _wait(d, what, cond, timeout=60.0, poll=0.02):
    deadline = time.time() + timeout
    while time.time() < deadline:
        got = cond()
        if got:
            return got
        time.sleep(poll)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}; status: "
                         f"{_value(d, 'status')!r}")


def _open(d, url: str, rel_path: str) -> None:
    from selenium.webdriver.common.by import By

    d.get(url)
    sel = "#open-path textarea, #open-path input"
    box = _wait(d, "the path box", lambda: d.find_elements(By.CSS_SELECTOR, sel))
    box[0].send_keys(rel_path)
    d.find_element(By.CSS_SELECTOR, "#open-btn").click()


def _click_image_pixel(d, x: int, y: int) -> None:
    """Click image pixel (x, y) of the displayed frame, mapping it to the element as Gradio
    does (the image is scaled to fit, never up, and centred)."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    img = d.find_element(By.CSS_SELECTOR, "#frame img")
    d.execute_script("arguments[0].scrollIntoView({block: 'center'});", img)
    r = d.execute_script(
        "const i = arguments[0], b = i.getBoundingClientRect();"
        "return [b.width, b.height, i.naturalWidth, i.naturalHeight];", img)
    w, h, nw, nh = r
    s = min(w / nw, h / nh, 1.0)
    ex, ey = (w - nw * s) / 2 + x * s, (h - nh * s) / 2 + y * s
    ActionChains(d).move_to_element_with_offset(img, ex - w / 2, ey - h / 2).click().perform()


def test_app_click_propagate_save_in_chromium(app_url, driver, tmp_path):
    from selenium.webdriver.common.by import By

    t_start = time.perf_counter()
    url, log, out = app_url
    d = driver
    x, y = _mouse_pixel()
    _open(d, url, VIDEO_REL)
    _wait(d, "the video to open", lambda: _info(d).get("video") == "mouse_video.mp4")
    _wait(d, "frame 0 to show", lambda: d.execute_script(
        "const i = document.querySelector('#frame img'); return i && i.naturalWidth > 0;"))
    assert _info(d)["n_frames"] == 10000 and _info(d)["areas"] == {}

    t0 = time.perf_counter()
    _click_image_pixel(d, x, y)
    info = _wait(d, "a mask after the click",
                 lambda: (i := _info(d)).get("areas", {}).get("1", 0) > 0 and i)
    browser_ms = (time.perf_counter() - t0) * 1000
    assert 200 < info["areas"]["1"] < 5000, info  # one mouse, about 40 px long
    shot = Path(os.environ.get("RODENTSEG_ARTIFACTS", tmp_path))
    shot.mkdir(parents=True, exist_ok=True)
    d.find_element(By.CSS_SELECTOR, "#frame").screenshot(str(shot / "app_click_frame.png"))

    d.find_element(By.CSS_SELECTOR, "#propagate-btn").click()
    _wait(d, "propagation", lambda: "propagated 30 frames" in (_value(d, "status") or ""),
          timeout=300, poll=0.5)
    d.find_element(By.CSS_SELECTOR, "#save-btn").click()
    saved = Path(_wait(d, "the save", lambda: _value(d, "saved-path"), timeout=300, poll=0.5))
    d.find_element(By.CSS_SELECTOR, "#next-review").click()  # the most uncertain frame
    review = _wait(d, "the review jump", lambda: (i := _info(d))["frame_idx"] > 0 and i)
    assert review["areas"].get("1", 0) > 200, review
    d.execute_script("window.scrollTo(0, 0);")
    d.set_window_size(1400, d.execute_script("return document.body.scrollHeight") + 100)
    shot_path = shot / "app_e2e.png"
    d.save_screenshot(str(shot_path))

    pngs = sorted((saved / "masks").glob("*.png"))
    assert [p.stem for p in pngs] == [f"{t:06d}" for t in range(31)]  # frames 0..30
    areas = [int((np.asarray(Image.open(p)) == 1).sum()) for p in pngs]
    assert min(areas) > 200, areas
    for f in ("masks.json", "overlay.mp4", "tracks.csv", "run.json", "review.csv"):
        assert (saved / f).stat().st_size > 0, f
    ds = out / "mouse_video-dataset"
    assert len(list((ds / "frames").glob("*.png"))) == 31 == len(list((ds / "masks").glob("*.png")))
    href = _wait(d, "the masks.json download link", lambda: d.execute_script(
        "const a = document.querySelector('#download-masks a[href]'); return a && a.href;"))
    coco = json.loads(urllib.request.urlopen(href, timeout=10).read())
    assert {a["image_id"] for a in coco["annotations"]} == set(range(31))

    # another browser session sees nothing of the first, and paths outside the root are refused
    d.switch_to.new_window("tab")
    _open(d, url, VIDEO_REL)
    _wait(d, "the video in the second session", lambda: _info(d).get("video"))
    assert _info(d)["areas"] == {} and _info(d)["frames_with_masks"] == 0
    box = d.find_element(By.CSS_SELECTOR, "#open-path textarea, #open-path input")
    box.clear()
    box.send_keys("../../../etc/passwd")
    d.find_element(By.CSS_SELECTOR, "#open-btn").click()
    _wait(d, "the refusal", lambda: "outside the data root" in d.page_source, timeout=30)

    server = [line for line in log.read_text().splitlines() if "click (" in line]
    assert f"click ({x}, {y}) frame 0 animal 1" in server[0]  # the pixel we aimed at
    print(f"\nscreenshot: {shot_path}\nclick at image pixel ({x}, {y}): server {server[-1]}; "
          f"browser click-to-mask {browser_ms:.0f} ms\ntest run time "
          f"{time.perf_counter() - t_start:.1f} s (app start not included)")
