"""docs/notebooks: each notebook is committed with the outputs of its current code (the hash run.py stores), has the
size knob first, ends with a figure and questions to try, and is listed with its thumbnail in the folder's README.
CI executes every notebook at its small size (python -m pytest --nbmake docs/notebooks, README "Test")."""
import glob
import json
import os
import sys

import pytest

from conftest import ROOT

FOLDER = os.path.join(ROOT, "docs", "notebooks")
NOTEBOOKS = sorted(glob.glob(os.path.join(FOLDER, "[0-9]*.ipynb")))
KNOB = 'SIZE = os.environ.get("VGGNUMPY_NOTEBOOK_SIZE", "full")'
sys.path.insert(0, FOLDER)


def load(path):
    import nbformat
    return nbformat.read(path, as_version=4)


def test_there_are_nine_notebooks():
    assert [os.path.basename(p)[:2] for p in NOTEBOOKS] == [f"{k:02d}" for k in range(1, 10)]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=os.path.basename)
def test_committed_outputs_come_from_the_current_code_at_full_size(path):
    import run
    nb = load(path)
    meta = nb.metadata.get("vggnumpy", {})
    assert meta.get("code_sha256") == run.code_hash(nb), (
        f"{os.path.basename(path)}: its code changed since its outputs were made; run "
        f"python docs/notebooks/run.py {os.path.basename(path)}")
    assert meta.get("size") == "full", "the committed outputs must be the full-size run"
    assert run.last_image(nb) is not None, "the notebook shows no figure"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=os.path.basename)
def test_shape_knob_first_and_questions_last(path):
    nb = load(path)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.startswith("# ")
    assert KNOB in code[0].source, "the first code cell must hold the size knob"
    assert nb.cells[-1].cell_type == "markdown" and nb.cells[-1].source.startswith("## Try")


def test_the_table_of_contents_lists_every_notebook_with_its_thumbnail():
    text = open(os.path.join(FOLDER, "README.md"), encoding="utf-8").read()
    for path in NOTEBOOKS:
        stem = os.path.splitext(os.path.basename(path))[0]
        assert f"({stem}.ipynb)" in text, stem
        assert f"thumbs/{stem}.png" in text and os.path.exists(os.path.join(FOLDER, "thumbs", f"{stem}.png")), stem


def test_code_hash_changes_with_the_code():
    import run
    nb = load(NOTEBOOKS[0])
    before = run.code_hash(nb)
    next(c for c in nb.cells if c.cell_type == "code").source += "\n# changed"
    assert run.code_hash(nb) != before
    json.dumps(nb)                       # still a notebook
