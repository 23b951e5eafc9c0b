"""SAM 2 prompt encoder + mask decoder to ONNX: parity with torch, dynamic prompt counts."""

import numpy as np
import pytest
import torch

from rodentseg.errors import RodentsegError
from rodentseg.export.sam2 import INPUTS, PromptMaskDecoder, export_sam2_decoder, load_sam2


def test_sam2_decoder_parity_and_dynamic_prompts(sam2_dir, openfield_frames, tmp_path):
    import onnxruntime as ort

    dst = tmp_path / "dec.onnx"
    p = export_sam2_decoder(str(sam2_dir), dst, openfield_frames[:1])
    print(f"SAM 2 decoder onnx vs torch: {p}")
    assert p.max_abs_diff_logits < 1e-4 and p.max_abs_diff_iou < 1e-4 and p.mask_iou >= 0.99
    # Other prompt and point counts than the traced ones (2 prompts of 3 points, with a box).
    model = load_sam2(str(sam2_dir))
    with torch.no_grad():
        embs = model.get_image_embeddings(torch.randn(1, 3, 128, 128))
    coords = torch.tensor([[[[20., 30.], [90., 100.], [50., 60.]],
                            [[10., 10.], [60., 70.], [0., 0.]]]])
    labels = torch.tensor([[[2, 3, 1], [1, 0, -10]]])  # box corners + click; click, bg, pad
    args = (embs[2], embs[0], embs[1], coords, labels)
    got = ort.InferenceSession(str(dst)).run(None, {n: t.numpy() for n, t in zip(INPUTS, args)})
    with torch.no_grad():
        want = PromptMaskDecoder(model).eval()(*args)
    assert got[0].shape == (1, 2, 3, 32, 32) and got[1].shape == (1, 2, 3)
    for g, w in zip(got, want):
        assert np.abs(g - w.numpy()).max() < 1e-4


def test_not_a_sam2_checkpoint(random_model_dir, tmp_path):
    with pytest.raises(RodentsegError, match="SAM 2 checkpoint"):
        export_sam2_decoder(str(random_model_dir), tmp_path / "x.onnx")
    assert not (tmp_path / "x.onnx").exists()
