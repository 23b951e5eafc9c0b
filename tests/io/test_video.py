"""Streaming video I/O on PyAV: metadata, grey and colour input, and every bad input."""

from pathlib import Path

import av
import numpy as np
import pytest

from rodentseg.errors import RodentsegError
from rodentseg.io.video import VideoWriter, probe, read_frames
from tests.conftest import write_video


def test_probe_and_read_real_clip(tracktor_clip):
    info = probe(tracktor_clip)
    assert (info.width, info.height, info.fps) == (640, 480, 30.0)
    assert info.frame_count == 40 and info.frame_count_exact
    assert info.duration_s == pytest.approx(40 / 30, abs=0.05)
    batches = list(read_frames(tracktor_clip, batch_size=16))
    assert [first for first, _ in batches] == [0, 16, 32]
    assert [len(b) for _, b in batches] == [16, 16, 8]
    assert batches[0][1].dtype == np.uint8 and batches[0][1].shape[1:] == (480, 640, 3)


@pytest.mark.parametrize("codec,pix_fmt", [
    ("ffv1", "gray"),        # lossless grey-scale, as IR lab cameras record
    ("mpeg4", "yuv420p"),    # an older codec in an .avi-style stream
])
def test_grey_and_other_codecs(tmp_path, codec, pix_fmt):
    rng = np.random.default_rng(0)
    grey = rng.integers(0, 255, (5, 48, 64), dtype=np.uint8)
    frames = grey if pix_fmt == "gray" else np.repeat(grey[..., None], 3, -1)
    path = write_video(tmp_path / f"v_{codec}.mkv", frames, codec=codec, pix_fmt=pix_fmt)
    info = probe(path)
    assert info.pix_fmt == pix_fmt and (info.width, info.height) == (64, 48)
    out = np.concatenate([b for _, b in read_frames(path, 2)])
    assert out.shape == (5, 48, 64, 3)
    if codec == "ffv1":  # lossless: the three channels equal the grey input exactly
        assert (out == grey[..., None]).all()


def test_writer_round_trip_and_atomic(tmp_path):
    frames = np.zeros((6, 31, 41, 3), np.uint8)  # odd size is padded for yuv420p
    frames[:, 5:20, 5:20] = 200
    with VideoWriter(tmp_path / "o.mp4", 41, 31, 25) as w:
        for f in frames:
            w.write(f)
    assert not (tmp_path / "o.tmp.mp4").exists()
    back = np.concatenate([b for _, b in read_frames(tmp_path / "o.mp4", 8)])
    assert back.shape[0] == 6 and abs(int(back[0, 10, 10, 0]) - 200) < 8
    with pytest.raises(ZeroDivisionError), VideoWriter(tmp_path / "x.mp4", 40, 30, 25) as w:
        w.write(frames[0, :30, :40])
        1 / 0
    assert not (tmp_path / "x.mp4").exists() and not (tmp_path / "x.tmp.mp4").exists()


def test_missing_video(tmp_path):
    with pytest.raises(RodentsegError, match="video not found"):
        probe(tmp_path / "nope.mp4")


def test_directory_without_images(tmp_path):
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(RodentsegError, match="directory with no images"):
        probe(tmp_path)


def test_image_folder_is_a_video(tmp_path):
    from PIL import Image

    from rodentseg.io.video import sha256_input

    for i in (2, 0, 1):  # written out of order, read in name order
        Image.fromarray(np.full((20, 30), 10 * i, np.uint8)).save(tmp_path / f"img{i:04d}.png")
    info = probe(tmp_path)
    assert (info.width, info.height, info.frame_count, info.codec) == (30, 20, 3, "images")
    frames = np.concatenate([b for _, b in read_frames(tmp_path, 2)])
    assert frames.shape == (3, 20, 30, 3) and frames[:, 0, 0, 0].tolist() == [0, 10, 20]
    digest = sha256_input(tmp_path)
    Image.fromarray(np.zeros((20, 30), np.uint8)).save(tmp_path / "img0002.png")
    assert sha256_input(tmp_path) != digest
    Image.fromarray(np.zeros((21, 30), np.uint8)).save(tmp_path / "img0003.png")
    with pytest.raises(RodentsegError, match="expected 30x20"):
        list(read_frames(tmp_path, 8))


def test_text_file_is_not_a_video(tmp_path):
    p = tmp_path / "notes.mp4"
    p.write_text("this is not a video\n" * 50)
    with pytest.raises(RodentsegError, match="not a video FFmpeg can read"):
        probe(p)


def test_truncated_video(tracktor_clip, tmp_path):
    data = Path(tracktor_clip).read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(RodentsegError, match="truncated|corrupt|not a video"):
        for _ in read_frames(cut, 8):
            pass


def test_corrupt_payload(tracktor_clip, tmp_path):
    data = bytearray(Path(tracktor_clip).read_bytes())
    data[len(data) // 3: len(data) // 3 * 2] = bytes(len(data) // 3)  # zero the middle third
    bad = tmp_path / "zeroed.mp4"
    bad.write_bytes(bytes(data))
    with pytest.raises(RodentsegError, match="truncated|corrupt"):
        for _ in read_frames(bad, 8):
            pass


def test_zero_frame_video(tmp_path):
    p = tmp_path / "empty.mp4"
    with av.open(str(p), "w") as c:  # a valid MP4 header, no frame ever encoded
        s = c.add_stream("libx264", rate=30)
        s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
        c.start_encoding()
    assert p.stat().st_size > 0
    with pytest.raises(RodentsegError, match="zero-frame|no decodable video frames"):
        for _ in read_frames(p, 4):
            pass
