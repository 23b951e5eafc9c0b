"""The Ray engine on a local Ray instance: same files as the local engine, skip on re-run,
a corrupt video reported without stopping the others."""

from pathlib import Path

import numpy as np
import pytest

from rodentseg.engine import VideoResult, segment_task, segment_videos_ray, summary_table
from rodentseg.errors import RodentsegError
from rodentseg.io.video import read_frames
from rodentseg.segment import SegmentOptions, segment_videos
from tests.conftest import TRACKTOR_VIDEO, needs, write_video

OPTS = SegmentOptions(animals=1, batch_size=8)
NO_RAY = "the Ray engine needs ray: pip install 'rodentseg[ray]'"


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> list[Path]:
    """Three 20-frame clips (frames 0-19, 20-39, 40-59 of the tracktor video) and a corrupt
    one (the first clip cut to half its bytes)."""
    if not TRACKTOR_VIDEO.exists():
        pytest.skip(f"test data {TRACKTOR_VIDEO} not present")
    frames = []
    for _, batch in read_frames(TRACKTOR_VIDEO, 20):
        frames.append(batch)
        if len(frames) == 3:
            break
    folder = tmp_path_factory.mktemp("ray-clips")
    paths = [write_video(folder / f"clip{i}.mp4", f) for i, f in enumerate(frames)]
    data = paths[0].read_bytes()
    (folder / "corrupt.mp4").write_bytes(data[: len(data) // 2])
    return paths + [folder / "corrupt.mp4"]


def _same_files(a: Path, b: Path) -> None:
    for rel in ["masks.json", "tracks.csv"] + [f"masks/{p.name}" for p in (a / "masks").iterdir()]:
        assert (a / rel).read_bytes() == (b / rel).read_bytes(), rel
    fa = np.concatenate([f for _, f in read_frames(a / "overlay.mp4", 20)])
    fb = np.concatenate([f for _, f in read_frames(b / "overlay.mp4", 20)])
    assert np.array_equal(fa, fb)


@needs(TRACKTOR_VIDEO)
@pytest.mark.slow
def test_ray_engine_matches_local_skips_and_reports(clips, default_model, tmp_path, capsys):
    ray = pytest.importorskip("ray", reason=NO_RAY)
    good, corrupt = clips[:3], clips[3]
    model = "rodentseg-tiny"  # the registry name, resolved inside each Ray worker
    local, local_failed = segment_videos(good, tmp_path / "local", model, "cpu", OPTS,
                                         progress=False)
    assert not local_failed
    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR")
    try:
        videos = [good[0], corrupt, good[1], good[2]]  # the bad one among the good ones
        done, failed = segment_videos_ray(videos, tmp_path / "ray", model, "cpu", OPTS,
                                          retries=1, progress=False)
        assert [d.name for d in done] == ["clip0", "clip1", "clip2"]
        assert list(failed) == [str(corrupt)] and "corrupt.mp4" in failed[str(corrupt)]
        assert not (tmp_path / "ray" / "corrupt").exists()
        for d in done:
            _same_files(tmp_path / "local" / d.name, d)
        table = capsys.readouterr().out
        assert "4 videos: 3 done, 0 skipped, 1 failed" in table

        stamps = [(d / "run.json").stat().st_mtime_ns for d in done]
        done2, failed2 = segment_videos_ray(good, tmp_path / "ray", model, "cpu", OPTS,
                                            progress=False)
        assert done2 == done and not failed2
        assert [(d / "run.json").stat().st_mtime_ns for d in done] == stamps
        assert "3 videos: 0 done, 3 skipped, 0 failed" in capsys.readouterr().out
    finally:
        ray.shutdown()


def test_task_reports_bad_input_without_raising(clips, random_model_dir, tmp_path):
    """Bad input is a result (not retried by Ray); the task body needs no Ray to run."""
    r = segment_task(str(clips[3]), str(tmp_path), str(random_model_dir), "cpu", OPTS, False,
                     "torch", 1)
    assert r.status == "failed" and "corrupt.mp4" in r.error and r.folder is None


def test_summary_table():
    rows = [VideoResult("/a/x.mp4", "done", "/o/x", 300, 10.0, host="n1"),
            VideoResult("/a/y.mp4", "skipped", "/o/y", 20, 0.1, host="n2"),
            VideoResult("/a/z.mp4", "failed", error="z.mp4 is corrupt")]
    lines = summary_table(rows).splitlines()
    assert lines[1].split() == ["x.mp4", "done", "300", "10.0", "30.0", "n1"]
    assert lines[2].split()[:3] == ["y.mp4", "skipped", "20"] and "z.mp4 is corrupt" in lines[3]
    assert lines[-1] == "3 videos: 1 done, 1 skipped, 1 failed"


@pytest.mark.parametrize("videos,retries,match", [
    (["x.mp4", "a/x.mp4"], 2, "same file name"),   # both would write OUT/x/
    (["x.mp4"], -1, "--retries must be >= 0"),
])
def test_bad_arguments_fail_before_ray_starts(tmp_path, videos, retries, match):
    with pytest.raises(RodentsegError, match=match):
        segment_videos_ray([tmp_path / v for v in videos], tmp_path / "o", "rodentseg-tiny",
                           "cpu", OPTS, retries=retries)


def test_task_raises_unexpected_errors_so_ray_retries(clips, random_model_dir, tmp_path,
                                                      monkeypatch):
    import rodentseg.segment

    def flaky(*args, **kwargs):
        raise OSError("stale NFS file handle")

    monkeypatch.setattr(rodentseg.segment, "segment_video", flaky)
    with pytest.raises(OSError, match="stale NFS"):
        segment_task(str(clips[0]), str(tmp_path), str(random_model_dir), "cpu", OPTS, False,
                     "torch", 1)


class _Cluster:
    """Stands in for the ``ray`` module where only ``cluster_resources()`` is read."""

    def __init__(self, gpus: float):
        self.gpus = gpus

    def cluster_resources(self):
        return {"CPU": 8.0, **({"GPU": self.gpus} if self.gpus else {})}


@pytest.mark.parametrize("device,gpus,per_task,expected", [
    ("auto", 0, None, (0.0, "cpu")),     # no GPU in the cluster: CPU tasks
    ("auto", 2, None, (1.0, "cuda")),    # GPUs present: one per task by default
    ("cuda", 2, 0.25, (0.25, "cuda")),   # four tasks share a GPU
    ("cpu", 2, None, (0.0, "cpu")),      # CPU asked for explicitly
])
def test_resources(device, gpus, per_task, expected):
    from rodentseg.engine.ray_engine import _resources

    assert _resources(_Cluster(gpus), device, per_task) == expected


@pytest.mark.parametrize("device,match", [
    ("cuda:1", "Ray assigns a GPU"),     # a fixed index means nothing on a cluster
    ("cuda", "has none"),                # no GPU anywhere in the cluster
    ("tpu", "auto, cpu or cuda"),
])
def test_resources_errors(device, match):
    from rodentseg.engine.ray_engine import _resources

    with pytest.raises(RodentsegError, match=match):
        _resources(_Cluster(0), device, None)
