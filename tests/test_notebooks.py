"""Every notebook runs top to bottom (in its QUICK setting) and is committed without outputs."""

from pathlib import Path

import nbformat
import pytest

NOTEBOOKS = sorted((Path(__file__).parent.parent / "notebooks").glob("*.ipynb"))
# What each notebook's quick run must display: (number of markdown tables, text each of them contains).
TABLES = {
    "gist_benchmark.ipynb": (5, ("| G gist |", "setup", "| seconds per gist |")),
    "audio_benchmark.ipynb": (1, ("| STOI |",)),
    "video_benchmark.ipynb": (1, ("| flicker /255 |",)),
    "image_benchmark.ipynb": (5, ("ΔE2000", "CIEDE2000 per hue", "chroma", "live dims")),
}


# run by `make test-slow` and `make notebooks`, not `make test`: the gist notebook's quick run distils seven gists
# (about 3 minutes on 2 cores), the largest share of the fast suite; its code is still compiled below
SLOW = {"gist_benchmark.ipynb"}
RUNS = [pytest.param(p, marks=pytest.mark.slow) if p.name in SLOW else p for p in NOTEBOOKS]


def test_there_are_notebooks():
    assert NOTEBOOKS, "notebooks/ holds no .ipynb"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_committed_without_outputs(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert not cell.outputs and cell.execution_count is None, f"{path.name}: strip outputs before committing"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_every_code_cell_compiles(path):
    nb = nbformat.read(path, as_version=4)
    for n, cell in enumerate(c for c in nb.cells if c.cell_type == "code"):
        source = "\n".join(line for line in cell.source.splitlines() if not line.lstrip().startswith(("%", "!")))
        compile(source, f"{path.name} code cell {n}", "exec")


@pytest.mark.parametrize("path", RUNS, ids=lambda p: p.name)
def test_notebook_runs(path, monkeypatch):
    from nbclient import NotebookClient

    monkeypatch.setenv("MMGIST_NOTEBOOK_QUICK", "1")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}).execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    tables = [o.data["text/markdown"] for o in outputs if "text/markdown" in o.get("data", {})]
    count, required = TABLES[path.name]
    assert len(tables) == count, f"{path.name}: {len(tables)} markdown tables displayed, expected {count}"
    for t in tables:
        assert any(r in t for r in required), f"{path.name}: a table contains none of {required}:\n{t}"


def test_every_notebook_says_what_it_displays():
    assert sorted(p.name for p in NOTEBOOKS) == sorted(TABLES), "add each notebook to TABLES"
