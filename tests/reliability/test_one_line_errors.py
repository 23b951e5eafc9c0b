"""Issue 23, defect 5: tracebacks instead of one line and exit status 2.

Each case runs the command line (``rodentseg.cli.main``) the way a user would and checks for
exit status 2 and one line on stderr, ``error: ...``, that names what was expected and what
was received; none of them left a traceback before. Cases that need a result or a model share
the small synthetic video of ``conftest.py``."""

from __future__ import annotations

import errno
import json
import os
import shutil
import socket
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from rodentseg.cli import main
from rodentseg.io.masks import iter_label_pngs
from rodentseg.io.results import ResultWriter, hidden_key
from rodentseg.models import MODEL_REGISTRY
from rodentseg.types import FrameMasks


def one_line_error(capsys) -> str:
    """The one stderr line of a command that failed (asserted), without ``error: ``."""
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert len(err) == 1 and err[0].startswith("error: "), err
    return err[0][len("error: "):]


def test_misspelt_model_config_key_is_named(tmp_path, short_video, capsys):
    """Was 153 lines of size mismatches that did not name the key."""
    model = shutil.copytree(MODEL_REGISTRY["rodentseg-tiny"], tmp_path / "typo")
    (model / "SHA256SUMS").unlink()  # a user's copy: the weights are intact, the config is not
    cfg = json.loads((model / "config.json").read_text())
    cfg["hiden_sizes"] = cfg.pop("hidden_sizes")
    (model / "config.json").write_text(json.dumps(cfg))
    assert main(["segment", str(short_video), "--out", str(tmp_path / "out"), "--model",
                 str(model), "--quiet"]) == 2
    msg = one_line_error(capsys)
    assert "'hiden_sizes' (did you mean 'hidden_sizes'?)" in msg and "problem(s)" in msg


def segment_failure(capsys) -> str:
    """``segment``'s failure lines: ``error: <message>`` and ``1 of 1 videos failed``."""
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert len(err) == 2 and err[0].startswith("error: ") and err[1].endswith("videos failed"), err
    return err[0][len("error: "):]


def test_more_than_255_track_ids_write_16_bit_label_pngs(tmp_path):
    """Was ``ValueError: obj_id 256 does not fit an 8-bit label PNG``."""
    h, w = 24, 32
    masks = np.zeros((3, h, w), bool)
    masks[0, :4], masks[1, 8:12], masks[2, 16:20] = True, True, True
    many = FrameMasks(1, np.array([1, 256, 300]), masks, np.ones(3))
    few = FrameMasks(0, np.array([7]), masks[:1], np.ones(1))
    with ResultWriter(tmp_path, w, h, 30.0) as writer:
        for fm in (few, many):
            writer.write(fm, np.zeros((h, w, 3), np.uint8))
    assert Image.open(tmp_path / "masks" / "000000.png").mode == "L"  # 8-bit while ids fit
    assert Image.open(tmp_path / "masks" / "000001.png").mode == "I;16"
    read = list(iter_label_pngs(tmp_path / "masks"))
    assert read[1].obj_ids.tolist() == [1, 256, 300]
    assert (read[1].masks == masks).all() and read[0].obj_ids.tolist() == [7]


def _open_files_under(folder) -> list[str]:
    fds = Path("/proc/self/fd")
    names = []
    for fd in fds.iterdir():
        try:
            names.append(os.readlink(fd))
        except OSError:
            continue
    return [n for n in names if n.startswith(str(folder))]


def test_full_disk_is_one_line_closes_writers_and_removes_the_partial(short_video, tmp_path,
                                                                       capsys, monkeypatch):
    """Was 55 lines of traceback, exit status 1, the writers left open."""
    from rodentseg.io import results

    real = results.write_label_png

    def full_disk(path, fm):
        if fm.frame_idx == 20:
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        real(path, fm)

    monkeypatch.setattr(results, "write_label_png", full_disk)
    out = tmp_path / "out"
    assert main(["segment", str(short_video), "--out", str(out), "--quiet", "--animals", "1",
                 "--device", "cpu"]) == 2
    msg = segment_failure(capsys)
    assert msg.startswith("no space left while writing") and "000020.png" in msg
    assert sorted(p.name for p in out.iterdir()) == [".mouse.lock"]  # no partial, no result
    assert _open_files_under(out) == []
    monkeypatch.setattr(results, "write_label_png", real)  # space again: the lock was released
    assert main(["segment", str(short_video), "--out", str(out), "--quiet", "--animals", "1",
                 "--device", "cpu"]) == 0


def test_unreadable_first_image_fails_its_folder_only(short_video, tmp_path, capsys):
    """Was a PIL traceback that also stopped the other videos of the command."""
    folder = tmp_path / "frames"
    folder.mkdir()
    (folder / "000000.png").write_bytes(b"not a png at all")
    Image.new("RGB", (32, 24)).save(folder / "000001.png")
    out = tmp_path / "out"
    assert main(["segment", str(folder), str(short_video), "--out", str(out), "--quiet",
                 "--device", "cpu"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith(f"error: {folder / '000000.png'} is not a readable image"), err
    assert (out / short_video.stem / "run.json").is_file()  # the other video went on


@pytest.fixture
def pred_masks(tmp_path):
    """A folder of two label PNGs (frames 0 and 1, 24x32, one animal)."""
    folder = tmp_path / "pred"
    folder.mkdir()
    label = np.zeros((24, 32), np.uint8)
    label[4:10, 4:12] = 1
    for i in range(2):
        Image.fromarray(label).save(folder / f"{i:06d}.png")
    return folder


def test_corrupt_label_png_is_one_line(pred_masks, tmp_path, capsys):
    damaged = pred_masks / "000001.png"
    damaged.write_bytes(damaged.read_bytes()[:40])  # cut short: a header and no image data
    assert main(["evaluate", str(pred_masks), str(pred_masks), "--out",
                 str(tmp_path / "eval")]) == 2
    assert "000001.png is not a readable label PNG" in one_line_error(capsys)


def _coco(image: dict, ann: dict | None) -> dict:
    img = {"id": 0, "file_name": "000000.png", "height": 24, "width": 32, **image}
    return {"images": [{k: v for k, v in img.items() if v is not None}],
            "annotations": [] if ann is None else [{"id": 5, "image_id": 0, **ann}]}


POLYGON = [[4, 4, 12, 4, 12, 10, 4, 10]]


@pytest.mark.parametrize("coco, expected", [
    # an image without its size
    (_coco({"height": None}, {"segmentation": POLYGON}),
     "image 0 has no usable KeyError('height')"),
    # an annotation without a mask
    (_coco({}, {"bbox": [4, 4, 8, 6]}), "annotation 5 of image 0 has no 'segmentation'"),
    # a polygon of one and a half points
    (_coco({}, {"segmentation": [[1, 2, 3]]}), "at least 3 (x, y) points"),
    # RLE counts that are not RLE
    (_coco({}, {"segmentation": {"size": [24, 32], "counts": "!!!!"}}), "bad segmentation"),
    # an RLE of another frame size
    (_coco({}, {"segmentation": {"size": [10, 10], "counts": "0"}}), "RLE size [10, 10]"),
])
def test_bad_coco_ground_truth_is_one_line(coco, expected, pred_masks, tmp_path, capsys):
    gt = tmp_path / "gt.json"
    gt.write_text(json.dumps(coco))
    assert main(["evaluate", str(pred_masks), str(gt), "--out", str(tmp_path / "eval")]) == 2
    assert expected in one_line_error(capsys)


def test_unwritable_out_is_one_line_for_evaluate_and_export(pred_masks, tmp_path, capsys):
    """Was a traceback (NotADirectoryError / PermissionError) after the work was done."""
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    assert main(["evaluate", str(pred_masks), str(pred_masks), "--out",
                 str(blocker / "eval")]) == 2
    assert one_line_error(capsys).startswith(f"cannot write to output directory {blocker}")
    pytest.importorskip("onnxruntime")
    assert main(["export", "--model", "rodentseg-tiny", "--out", str(blocker / "exp" / "x")]) == 2
    assert one_line_error(capsys).startswith(f"cannot write to output directory {blocker}")


@pytest.mark.parametrize("argv, expected", [
    (["track", "MASKS", "--out", "OUT", "--fps", "inf"], "expected a positive finite number"),
    (["track", "MASKS", "--out", "OUT", "--px-per-cm", "nan"], "expected a positive finite"),
])
def test_infinite_numbers_are_refused_by_the_parser(argv, expected, capsys):
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2 and expected in capsys.readouterr().err


def test_app_refuses_infinite_upload_limit_and_a_port_in_use(tmp_path, capsys):
    assert main(["app", "--data-root", str(tmp_path), "--max-upload-mb", "inf"]) == 2
    assert "--max-upload-mb must be a finite number > 0, got inf" in one_line_error(capsys)
    with socket.create_server(("127.0.0.1", 0)) as busy:
        port = busy.getsockname()[1]
        assert main(["app", "--data-root", str(tmp_path), "--port", str(port)]) == 2
    assert one_line_error(capsys).startswith(f"cannot listen on 127.0.0.1:{port}")


def test_video_file_name_of_248_characters_is_segmented(short_video, tmp_path):
    """Was ``OSError: [Errno 36] File name too long`` (the hidden partial folder's name)."""
    video = tmp_path / ("m" * 248 + ".mp4")
    shutil.copy2(short_video, video)
    out = tmp_path / "out"
    assert main(["segment", str(video), "--out", str(out), "--quiet", "--no-overlay",
                 "--animals", "1", "--device", "cpu"]) == 0
    assert (out / video.stem / "run.json").is_file()
    assert [p.name for p in out.iterdir() if p.name.startswith(".")] == [
        f".{hidden_key(video.stem)}.lock"]


@pytest.mark.parametrize("item", ["steps=abc", "lr=fast"])
def test_train_set_with_a_value_of_the_wrong_type_is_one_line(item, tmp_path, capsys):
    assert main(["train", "--set", item, "--set", f"out={tmp_path}/r"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and item.split("=")[1] in err
    assert not (tmp_path / "r").exists()
