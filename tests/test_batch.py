"""vggnumpy batch: grids and job files, Dask against one-after-another, resume, failures, Ctrl-C, what a task \
carries."""
import json
import os
import pickle

import numpy as np
import pytest
from PIL import Image

from conftest import shared_image
from vggnumpy.batch import jobs as batch, run as batch_run
from vggnumpy import config
from vggnumpy.cli.main import main

FAST = dict(size=40, iterations=3, scales=1)


def _grid(wfile, weights=(5.0, 20.0)):
    contents = [shared_image("content", "tubingen.jpg"), shared_image("content", "golden_gate.jpg")]
    styles = [(shared_image("style", "starry_night.jpg"),),
              (shared_image("style", "the_scream.jpg"), shared_image("style", "starry_night.jpg"))]
    return batch.grid(contents, styles, {"style_weight": list(weights)}, dict(FAST, weights=wfile))


def _pixels(folder):
    return {n: np.asarray(Image.open(os.path.join(folder, n))) for n in sorted(os.listdir(folder))
            if n.endswith(".png") and n != batch_run.SHEET}


def _records(folder):
    with open(os.path.join(folder, batch_run.RECORDS)) as f:
        return json.load(f)


@pytest.mark.slow
def test_a_grid_is_the_product_and_each_name_says_its_settings(wfile):
    jobs = _grid(wfile)
    assert len(jobs) == 8
    assert [j.options.style_weight for j in jobs[:2]] == [5.0, 20.0]
    assert jobs[2].styles[1].endswith("starry_night.jpg")                     # a blend of two
    varied = batch_run.varied_options(jobs)
    assert varied == ["style_weight"]
    names = batch.output_names(jobs, varied)
    assert len(set(names)) == 8
    assert names[3] == "tubingen__the_scream+starry_night__style-weight=20.png"


@pytest.mark.slow
def test_a_job_file_round_trips(wfile, tmp_path):
    """Jobs saved as JSON (and YAML), read back equal; relative paths are read from the file's folder."""
    jobs = _grid(wfile)
    items = [json.loads(j.to_json()) for j in jobs]
    items[0]["content"] = os.path.relpath(items[0]["content"], tmp_path)
    (tmp_path / "jobs.json").write_text(json.dumps(items))
    back = batch.read_job_file(str(tmp_path / "jobs.json"))
    assert [os.path.normpath(b.content) for b in back] == [j.content for j in jobs]
    assert ([b.options for b in back] == [j.options for j in jobs]
            and [b.styles for b in back] == [j.styles for j in jobs])
    batch_run.run_batch(jobs[:1], str(tmp_path / "ran"), sequential=True, log=lambda m: None, progress=False,
                        sheet=False)
    again = batch.read_job_file(str(tmp_path / "ran" / "jobs.json"))         # an earlier batch's record
    assert again == jobs[:1]
    yaml = pytest.importorskip("yaml")
    (tmp_path / "jobs.yaml").write_text(yaml.safe_dump([json.loads(j.to_json()) for j in jobs]))
    assert [b.options for b in batch.read_job_file(str(tmp_path / "jobs.yaml"))] == [j.options for j in jobs]


@pytest.mark.slow
def test_local_cluster_gives_the_same_bytes_as_one_after_another(wfile, tmp_path):
    """A LocalCluster(processes=False) of 2 workers and the sequential run write byte-identical PNGs; the
    records say where each ran; the contact sheet is drawn."""
    pytest.importorskip("distributed")
    jobs = _grid(wfile)
    seq, dsk = str(tmp_path / "seq"), str(tmp_path / "dask")
    batch_run.run_batch(jobs, seq, sequential=True, log=lambda m: None, progress=False)
    _, summary = batch_run.run_batch(jobs, dsk, workers=2, processes=False, log=lambda m: None, progress=False)
    assert summary["ran_on"].startswith("dask") and summary["done"] == 8
    assert sorted(os.listdir(seq)) == sorted(os.listdir(dsk))
    for name in _pixels(seq):
        with open(os.path.join(seq, name), "rb") as a, open(os.path.join(dsk, name), "rb") as b:
            assert a.read() == b.read(), name
    assert os.path.exists(os.path.join(dsk, batch_run.SHEET))
    rec = _records(dsk)["jobs"][0]
    assert rec["status"] == "done" and rec["evaluations"] >= 3 and rec["trained"] is False and rec["seconds"] > 0


@pytest.mark.slow
def test_a_rerun_skips_the_jobs_done_and_redoes_a_changed_one(wfile, tmp_path):
    jobs = _grid(wfile, weights=(5.0,))[:2]
    out = str(tmp_path / "out")
    batch_run.run_batch(jobs, out, sequential=True, log=lambda m: None, progress=False, sheet=False)
    stamps = {n: os.stat(os.path.join(out, n)).st_mtime_ns for n in _pixels(out)}
    first = _records(out)["jobs"][0]
    lines = []
    entries, summary = batch_run.run_batch(jobs, out, sequential=True, log=lines.append, progress=False, sheet=False)
    assert "0 to run, 2 done before" in lines[0]
    assert {n: os.stat(os.path.join(out, n)).st_mtime_ns for n in _pixels(out)} == stamps
    again = _records(out)["jobs"][0]
    assert again["earlier"] is True and again["evaluations"] == first["evaluations"]
    changed = [config.Job(j.content, j.styles, None, config.make(**dict(FAST, weights=wfile, style_weight=5.0,
                                                                         seed=1, init="noise")))
               for j in jobs[:1]]
    entries, _ = batch_run.run_batch(changed, out, sequential=True, log=lambda m: None, progress=False, sheet=False)
    assert entries[0].record["status"] == "done" and not entries[0].record.get("earlier")


@pytest.mark.parametrize("where", ["sequential", "dask"])
@pytest.mark.slow
def test_a_failed_job_is_recorded_and_the_others_finish(wfile, tmp_path, where):
    """A missing photo (refused before sending) and an unreadable one (fails on the worker, retried once):
    each recorded with its file named; the other jobs are written."""
    if where == "dask":
        pytest.importorskip("distributed")
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"not an image at all")
    style = (shared_image("style", "starry_night.jpg"),)
    jobs = batch.grid([shared_image("content", "tubingen.jpg"), str(tmp_path / "nothere.jpg"), str(bad)], [style],
                      {}, dict(FAST, weights=wfile))
    out = str(tmp_path / "out")
    entries, summary = batch_run.run_batch(jobs, out, sequential=where == "sequential", workers=2, processes=False,
                                           log=lambda m: None, progress=False)
    assert [e.record["status"] for e in entries] == ["done", "failed", "failed"]
    assert "nothere.jpg: content image file not found" in entries[1].record["error"]
    assert str(bad) in entries[2].record["error"] and "vggnumpy-job-" not in entries[2].record["error"]
    assert list(_pixels(out)) == [os.path.basename(entries[0].path)]
    assert summary["failed"] == 2 and os.path.exists(os.path.join(out, batch_run.SHEET))


@pytest.mark.slow
def test_stopping_cancels_the_rest_and_keeps_what_finished(wfile, tmp_path):
    jobs = _grid(wfile, weights=(5.0,))
    out = str(tmp_path / "out")
    done = []
    stop = lambda: "SIGINT" if len(done) >= 1 else ""
    orig = batch_run.finish

    def counting(e, result, error=None):
        orig(e, result, error)
        if error is None:
            done.append(e)
    batch_run.finish = counting
    try:
        entries, summary = batch_run.run_batch(jobs, out, sequential=True, log=lambda m: None, progress=False,
                                               stop=stop)
    finally:
        batch_run.finish = orig
    assert [e.record["status"] for e in entries] == ["done", "cancelled", "cancelled", "cancelled"]
    assert len(_pixels(out)) == 1
    entries, _ = batch_run.run_batch(jobs, out, sequential=True, log=lambda m: None, progress=False)
    assert [e.record.get("earlier", False) for e in entries] == [True, False, False, False]


def test_a_task_carries_the_job_and_its_files_not_the_weights(wfile):
    """Besides its input files' bytes, a pickled task is under 10 KB; the weights file (80 MB pretrained, here
    an untrained 80 MB one too) is never in it."""
    job = _grid(wfile)[2]
    task = batch.pack(job)
    files = sum(len(data) for _, data in task.files)
    assert len(pickle.dumps(task)) - files < 10_000
    assert os.path.getsize(wfile) > 1_000_000 and len(pickle.dumps(task)) < files + os.path.getsize(wfile) / 100
    assert [name for name, _ in task.files] == ["tubingen.jpg", "the_scream.jpg", "starry_night.jpg"]


@pytest.mark.parametrize("args, expect", [
    (["--contents", "X.jpg"], "give a job file, or --contents PHOTO... and --styles PAINTING..."),
    (["JOBS", "--style-weight", "3"], "with a job file, give the photos, paintings and options in the file"),
    (["--contents", "C", "--styles", "S", "--gif", "a.gif"], "--gif: not available in a batch"),
    (["BADJSON"], "not valid JSON"),
    (["--contents", "C", "--styles", "S", "--workers", "0"], "--workers 0: give at least 1"),
])
def test_bad_batch_input_is_one_clear_line(args, expect, tmp_path, capsys):
    (tmp_path / "jobs.json").write_text("[]")
    (tmp_path / "bad.json").write_text("{nope")
    c, s = shared_image("content", "tubingen.jpg"), shared_image("style", "starry_night.jpg")
    subst = {"JOBS": str(tmp_path / "jobs.json"), "BADJSON": str(tmp_path / "bad.json"), "C": c, "S": s}
    out = tmp_path / "out"
    code = main(["batch", *[subst.get(a, a) for a in args], "-o", str(out)])
    err = capsys.readouterr().err
    assert code == 1 and expect in err and "Traceback" not in err, err
    assert not out.exists()


@pytest.mark.slow
def test_without_dask_the_jobs_run_here_and_it_says_how_to_install(wfile, tmp_path, monkeypatch, capsys):
    from vggnumpy.batch import cluster

    def missing():
        raise ImportError("Dask distributed is not installed; pip install 'vggnumpy[dist]' to run the jobs on "
                          "several cores or machines")
    monkeypatch.setattr(cluster, "require", missing)
    c, s = shared_image("content", "tubingen.jpg"), shared_image("style", "starry_night.jpg")
    code = main(["batch", "--contents", c, "--styles", s, "-s", "32", "-n", "2", "--scales", "1", "--weights", wfile,
                 "-o", str(tmp_path / "out"), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 0 and "pip install 'vggnumpy[dist]'" in err and "one after another" in err
    assert _records(str(tmp_path / "out"))["ran_on"].startswith("sequential")


@pytest.mark.slow
@pytest.mark.parametrize("where, sig", [("--sequential", "SIGINT"), ("--workers=2", "SIGINT"),
                                        ("--sequential", "SIGTERM")])
def test_ctrl_c_cancels_the_rest_keeps_the_finished_and_exits_130(wfile, tmp_path, where, sig):
    """SIGINT to the whole process group, as a terminal sends it: exit 130, one line, no traceback (the
    LocalCluster's workers ignore it; the client cancels), the finished outputs kept, the rest recorded. SIGTERM
    to the command alone: the same, exit 143 (it said 130 before)."""
    import glob
    import signal
    import subprocess
    import sys
    import time
    if where != "--sequential":
        pytest.importorskip("distributed")
    out = str(tmp_path / "out")
    c = [shared_image("content", "tubingen.jpg"), shared_image("content", "golden_gate.jpg")]
    s = [shared_image("style", "starry_night.jpg"), shared_image("style", "the_scream.jpg")]
    cmd = [sys.executable, "-m", "vggnumpy", "batch", "--contents", *c, "--styles", *s, "-s", "64", "-n", "25",
           "--scales", "1", "--weights", wfile, "-o", out, "--no-progress", where]
    p = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, start_new_session=True)
    t0 = time.time()
    while not glob.glob(os.path.join(out, "*__*.png")) and time.time() - t0 < 120 and p.poll() is None:
        time.sleep(0.1)
    if sig == "SIGINT":
        os.killpg(p.pid, signal.SIGINT)
    else:
        p.send_signal(signal.SIGTERM)
    err = p.communicate(timeout=120)[1]
    assert p.returncode == {"SIGINT": 130, "SIGTERM": 143}[sig] and "Traceback" not in err, err
    statuses = [r["status"] for r in _records(out)["jobs"]]
    assert "cancelled" in statuses and statuses.count("done") == len(_pixels(out)) >= 1


@pytest.mark.slow
def test_gpu_jobs_go_to_a_worker_even_when_none_declares_a_gpu(wfile, tmp_path, monkeypatch):
    """--device gpu jobs on the GPU path (tests/fakecupy.py: CuPy on the host) through Dask: with no worker
    declaring resources GPU=1 they are not left waiting; it says so, and they run."""
    pytest.importorskip("distributed")
    import fakecupy
    fakecupy.install(monkeypatch)
    jobs = batch.grid([shared_image("content", "tubingen.jpg")], [(shared_image("style", "starry_night.jpg"),)], {},
                      dict(FAST, weights=wfile, device="gpu"))
    lines = []
    entries, summary = batch_run.run_batch(jobs, str(tmp_path / "out"), workers=1, processes=False, log=lines.append,
                                           progress=False, sheet=False)
    assert summary["done"] == 1 and any("no worker declares a GPU" in line for line in lines)
    assert fakecupy.launches["add_bias_relu"] > 0


def test_the_command_lines_lists_make_the_grid(tmp_path):
    """--style-weight 2,5 and --pooling max,avg multiply; A+B is a blend; a single value stays fixed; paths are
    kept absolute, so DIR/jobs.json can be run from anywhere."""
    from vggnumpy.cli import batch as batch_cli
    from vggnumpy.cli.main import build_parser
    c, s1, s2 = (shared_image("content", "tubingen.jpg"), shared_image("style", "starry_night.jpg"),
                 shared_image("style", "the_scream.jpg"))
    args = build_parser().parse_args(["batch", "--contents", os.path.relpath(c), "--styles", s1, f"{s1}+{s2}",
                                      "--style-weight", "2,5", "--pooling", "max,avg", "-s", "64", "-o", "x"])
    jobs = batch_cli.jobs_of(args)
    assert len(jobs) == 8 and {j.options.size for j in jobs} == {64}
    assert {(j.options.style_weight, j.options.pooling) for j in jobs} == {(2.0, "max"), (2.0, "avg"), (5.0, "max"),
                                                                          (5.0, "avg")}
    assert jobs[4].styles == (s1, s2) and all(os.path.isabs(j.content) for j in jobs)
    assert batch_run.varied_options(jobs) == ["style_weight", "pooling"]
