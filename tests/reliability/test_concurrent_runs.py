"""Issue 23, defect 1: two runs of the same video into one ``--out`` published a corrupt result
marked finished (``tracks.csv`` with 153 of 317 rows, then skipped as done by every later run).
Each run now writes its own partial folder and holds ``OUT/.<name>.lock`` until it publishes; a
second run for the same result is refused with one line (exit status 2)."""

from __future__ import annotations

import pytest

from rodentseg.errors import RodentsegError
from rodentseg.io.results import incomplete
from rodentseg.segment import SegmentOptions, segment_video
from tests.reliability.conftest import assert_same_result, start_warm

OPTS = SegmentOptions(animals=1, overlay=False)


def test_second_run_is_refused_while_the_first_writes(short_video, default_model, tmp_path,
                                                      capsys):
    """The second run starts inside the first, after its first batch: no timing luck needed."""
    out = tmp_path / "out"
    refused = []

    def second_run(n_frames: int) -> None:
        if n_frames == OPTS.batch_size:
            with pytest.raises(RodentsegError, match="being written by another rodentseg run"):
                segment_video(short_video, out, default_model, OPTS, progress=False)
            refused.append(n_frames)
            assert len(list(out.glob(".mouse.partial-*"))) == 1  # the first run's, untouched

    result = segment_video(short_video, out, default_model, OPTS, progress=False,
                           on_batch=second_run)
    assert refused and incomplete(result) is None
    assert not list(out.glob(".*partial*"))
    assert_same_result(result, segment_video(short_video, tmp_path / "ref", default_model, OPTS,
                                             progress=False))
    segment_video(short_video, out, default_model, OPTS)  # the lock was released: skipped
    assert "already done" in capsys.readouterr().out


@pytest.mark.slow
def test_two_processes_at_once_publish_one_complete_result(long_video, default_model, tmp_path):
    """Two ``rodentseg segment`` processes released at the same instant: one writes the result,
    the other stops with one line and exit status 2 (about 15 s: two processes import torch)."""
    out, go = tmp_path / "out", tmp_path / "go"
    args = ["segment", str(long_video), "--out", str(out), "--animals", "1", "--no-overlay",
            "--device", "cpu", "--quiet"]
    procs = [start_warm(go, *args) for _ in range(2)]
    go.touch()
    ends = [(p.wait(timeout=300), *p.communicate()) for p in procs]
    assert sorted(rc for rc, _, _ in ends) == [0, 2], ends
    _, _, err = next(e for e in ends if e[0] == 2)
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "is being written by another rodentseg run right now" in errors[0]
    result = out / long_video.stem
    assert incomplete(result) is None and not list(out.glob(".*partial*"))
    assert_same_result(result, segment_video(long_video, tmp_path / "ref", default_model, OPTS,
                                             progress=False))
