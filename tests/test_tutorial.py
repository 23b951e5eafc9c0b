"""docs/tutorial.ipynb runs from start to end (nbclient) on a short clip of the example video."""

from pathlib import Path

import pytest

from tests.conftest import REPO

nbclient = pytest.importorskip("nbclient")
nbformat = pytest.importorskip("nbformat")
pytest.importorskip("ipykernel")
pytest.importorskip("movement")


@pytest.mark.slow
def test_tutorial_runs(tracktor_clip, tmp_path, monkeypatch):
    monkeypatch.setenv("RODENTSEG_TUTORIAL_VIDEO", str(tracktor_clip))
    monkeypatch.setenv("RODENTSEG_TUTORIAL_OUT", str(tmp_path / "out"))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    nb = nbformat.read(REPO / "docs" / "tutorial.ipynb", as_version=4)
    nbclient.NotebookClient(nb, timeout=300, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.output_type == "error"]
    table = Path(tmp_path / "out" / "zones.csv")
    assert table.is_file() and "centre_time_s" in table.read_text().splitlines()[0]
    # the last cell shows the zones picture
    assert any("image/png" in o.get("data", {}) for o in nb.cells[-1].outputs)
