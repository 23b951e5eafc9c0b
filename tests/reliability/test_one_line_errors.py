"""Issue 23, defect 5: tracebacks instead of one line and exit status 2.

Each case runs the command line (``rodentseg.cli.main``) the way a user would and checks for
exit status 2 and one line on stderr, ``error: ...``, that names what was expected and what
was received; none of them left a traceback before. Cases that need a result or a model share
the small synthetic video of ``conftest.py``."""

from __future__ import annotations

import json
import shutil

from rodentseg.cli import main
from rodentseg.models import MODEL_REGISTRY


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
