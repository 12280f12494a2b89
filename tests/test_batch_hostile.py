"""vggnumpy batch against hostile input: colliding or malicious output names, job-file bombs and wrong types, too
many jobs, JPEG resumes, unwritable output folders. Every refusal is one line naming the file, job and option."""
import json
import os
import stat

import pytest

from conftest import shared_image
from vggnumpy.batch import jobs as batch, run as batch_run
from vggnumpy import config
from vggnumpy.cli.main import main

FAST = dict(size=40, iterations=3, scales=1)


def _images():
    return shared_image("content", "tubingen.jpg"), shared_image("style", "starry_night.jpg")


def _job(wfile, output=None, **opts):
    c, s = _images()
    return config.Job(c, (s,), output, config.make(**dict(FAST, weights=wfile, **opts)))


def _run(jobs, out, lines=None, **kw):
    return batch_run.run_batch(jobs, str(out), sequential=True, log=(lines.append if lines is not None else
                                                                      lambda m: None), progress=False, sheet=False,
                               **kw)


def _records(folder):
    with open(os.path.join(folder, batch_run.RECORDS)) as f:
        return json.load(f)


def _cli(args, capsys):
    code = main(["batch", *args, "--sequential", "--no-progress"])
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    return code, err


def _job_item(wfile, **changes):
    c, s = _images()
    item = dict(content=c, styles=[s], options=dict(FAST, weights=wfile))
    item.update(changes)
    return item


# 1. output names that collide ---------------------------------------------------------------------------------------

def test_output_names_never_repeat_and_skip_every_name_taken(wfile):
    """a.png, a.png, a__2.png: the repeat is numbered past a__2.png, which the third job asks for; a name that
    differs only in case counts as taken (macOS, Windows); the extension is kept; the same every time."""
    outs = ["a.png", "a.png", "a__2.png", "A.PNG", "b.jpg", "b.jpg", None, None]
    jobs = [_job(wfile, o) for o in outs]
    names = batch.output_names(jobs, [])
    assert len({n.casefold() for n in names}) == len(names), names
    assert names[:3] == ["a.png", "a__3.png", "a__2.png"]
    assert names[4] == "b.jpg" and names[5].endswith(".jpg") and names[5] != "b.jpg"
    assert batch.output_names(jobs, []) == names


@pytest.mark.slow
def test_colliding_outputs_run_once_each_and_a_rerun_skips_them_all(wfile, tmp_path):
    jobs = [_job(wfile, "a.png"), _job(wfile, "a.png", seed=1, init="noise"), _job(wfile, "a__2.png", seed=2,
                                                                                     init="noise")]
    out = tmp_path / "out"
    entries, summary = _run(jobs, out)
    assert summary["done"] == 3 and len({e.path for e in entries}) == 3
    lines = []
    _run(jobs, out, lines)
    assert "0 to run, 3 done before" in lines[0], lines


@pytest.mark.parametrize("name, what", [("sheet.png", "contact sheet"), ("Sheet.PNG", "contact sheet"),
                                        ("jobs.json", "jobs.json")])
@pytest.mark.slow
def test_a_job_named_like_the_sheet_or_the_records_is_refused_the_same_way_each_time(wfile, tmp_path, name, what):
    jobs = [_job(wfile, name), _job(wfile)]
    out = tmp_path / "out"
    for _ in range(2):
        entries, summary = batch_run.run_batch(jobs, str(out), sequential=True, log=lambda m: None, progress=False)
        assert [e.record["status"] for e in entries] == ["failed", "done"]
        err = entries[0].record["error"]
        assert name in err and what in err and "job 1" in err, err
        assert batch_run.RECORDS in os.listdir(out)
    assert _records(str(out))["jobs"][0]["status"] == "failed"


# 2. billion laughs and other job-file bombs ---------------------------------------------------------------------------

def _laughs(levels, width=10):
    lines = ['a: &a ["lol"]']
    for k in range(1, levels + 1):
        lines.append(f"{chr(97 + k)}: &{chr(97 + k)} [" + ", ".join([f"*{chr(96 + k)}"] * width) + "]")
    return "\n".join(lines) + "\n"


def test_a_yaml_billion_laughs_is_refused_before_it_expands(tmp_path, capsys):
    """A 1 KB file whose aliases expand to 10**9 nodes: refused from the node graph, before construction."""
    pytest.importorskip("yaml")
    path = tmp_path / "lol.yaml"
    path.write_text(_laughs(9) + "jobs: *j\n")
    assert path.stat().st_size < 2000
    with pytest.raises(batch.BatchError) as e:
        batch.read_job_file(str(path))
    assert str(path) in str(e.value) and f"{batch.MAX_JOB_NODES:,}" in str(e.value)


def test_a_smaller_alias_bomb_is_refused_at_the_bound(tmp_path, monkeypatch):
    """The same with the bound lowered (so the test stays small whatever the code does): the message names the
    file and the bound."""
    pytest.importorskip("yaml")
    monkeypatch.setattr(batch, "MAX_JOB_NODES", 5_000, raising=False)
    path = tmp_path / "lol.yml"
    # a list whose last item is 10**4 "lol"s, through aliases
    path.write_text("- &a [lol]\n- &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n- &c [*b, *b, *b, *b, *b, *b, *b, *b, "
                    "*b, *b]\n- &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n- &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, "
                    "*d]\n")
    with pytest.raises(batch.BatchError) as e:
        batch.read_job_file(str(path))
    assert str(path) in str(e.value) and "5,000" in str(e.value), e.value
    path.write_text("- &a [*a]\n")                     # an alias inside what it names: a cycle
    with pytest.raises(batch.BatchError) as e:
        batch.read_job_file(str(path))
    assert str(path) in str(e.value) and "refers to itself" in str(e.value) and "not valid" not in str(e.value)


def test_a_job_file_too_large_or_too_deep_is_refused_naming_it(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(batch, "MAX_JOB_FILE_BYTES", 1000, raising=False)
    big = tmp_path / "big.json"
    big.write_text(json.dumps([{"content": "a.jpg", "styles": ["b.jpg"], "output": "x" * 2000 + ".png"}]))
    with pytest.raises(batch.BatchError) as e:
        batch.read_job_file(str(big))
    assert str(big) in str(e.value) and "1,000 bytes" in str(e.value)
    monkeypatch.undo()
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    code, err = _cli([str(deep), "-o", str(tmp_path / "out")], capsys)
    assert code == 1 and str(deep) in err and "nested" in err, err
    notutf = tmp_path / "latin.json"
    notutf.write_bytes(b'[{"content": "caf\xe9.jpg"}]')
    code, err = _cli([str(notutf), "-o", str(tmp_path / "out")], capsys)
    assert code == 1 and str(notutf) in err and "UTF-8" in err, err


# 3. the number of jobs ------------------------------------------------------------------------------------------------

def test_too_many_jobs_are_refused_before_any_is_packed(wfile, tmp_path, monkeypatch, capsys):
    """1001 style weights: refused by default (1000) before a job is packed, saying --max-jobs; a job file the
    same; --max-jobs raises the bound."""
    def never(*a, **k):
        raise AssertionError("a job was packed")
    monkeypatch.setattr(batch, "pack", never)
    c, s = _images()
    weights = ",".join(str(k) for k in range(1, 1002))
    code, err = _cli(["--contents", c, "--styles", s, "--style-weight", weights, "-o", str(tmp_path / "o")], capsys)
    assert code == 1 and "1001 jobs" in err and "--max-jobs" in err and "1000" in err, err
    assert not (tmp_path / "o").exists()
    jobs = tmp_path / "jobs.json"
    jobs.write_text(json.dumps([_job_item(wfile)] * 3))
    code, err = _cli([str(jobs), "--max-jobs", "2", "-o", str(tmp_path / "o")], capsys)
    assert code == 1 and str(jobs) in err and "3 jobs" in err and "--max-jobs" in err, err
    from vggnumpy.cli import batch as batch_cli
    from vggnumpy.cli.main import build_parser
    args = build_parser().parse_args(["batch", "--contents", c, "--styles", s, "--style-weight", weights,
                                      "--max-jobs", "1001", "-o", "x"])
    assert len(batch_cli.jobs_of(args)) == 1001
    code, err = _cli(["--contents", c, "--styles", s, "--max-jobs", "0", "-o", str(tmp_path / "o")], capsys)
    assert code == 1 and "--max-jobs 0" in err, err


# 4. wrong types in a job file -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("change, field", [
    (dict(styles=[1]), "styles"),
    (dict(styles="starry.jpg"), "styles"),
    (dict(styles=[]), "styles"),
    (dict(content=None), "content"),
    (dict(content=["a.jpg"]), "content"),
    (dict(output=5), "output"),
    (dict(output=["a.png"]), "output"),
    (dict(options=[]), "options"),
    (dict(options={"size": "NaN"}), "size"),
    (dict(options={"size": "Infinity"}), "size"),
    (dict(options={"style_weight": "-Infinity"}), "style_weight"),
    (dict(options={"size": "512"}), "size"),
    (dict(options={"size": True}), "size"),
    (dict(options={"style_layer_weights": ["NaN"]}), "style_layer_weights"),
    (dict(options={"style_layers": [1]}), "style_layers"),
    (dict(options={"masks": 5}), "masks"),
    (dict(options={"weights": 5}), "weights"),
    (dict(options={"original_colors": "yes"}), "original_colors"),
    (dict(options={"pooling": ["avg"]}), "pooling"),
    (dict(options={"max_memory": [1]}), "max_memory"),
    (dict(options={"no_such_option": 1}), "no_such_option"),
    (dict(contnet="a.jpg"), "contnet"),
    (dict(content="a\u0000.jpg"), "content"),
])
def test_a_wrong_type_names_the_file_the_job_and_the_field(wfile, tmp_path, capsys, change, field):
    """Job 2 of the file is wrong: exit 1, one line naming the file, job 2 and the field; no traceback."""
    good, bad = _job_item(wfile), _job_item(wfile)
    for k, v in change.items():
        if k == "options" and isinstance(v, dict):
            bad["options"] = dict(bad["options"], **v)
        else:
            bad[k] = v
    text = json.dumps([good, bad])
    for word in ("NaN", "Infinity", "-Infinity"):            # JSON as Python writes it: NaN and Infinity bare
        text = text.replace(f'"{word}"', word)
    path = tmp_path / "jobs.json"
    path.write_text(text)
    code, err = _cli([str(path), "-o", str(tmp_path / "out")], capsys)
    assert code == 1 and str(path) in err and "job 2" in err and field in err, err
    assert "cannot convert" not in err and not (tmp_path / "out").exists()


def test_a_job_that_is_not_an_object_is_refused(tmp_path, capsys):
    path = tmp_path / "jobs.yaml"
    pytest.importorskip("yaml")
    path.write_text("- content: a.jpg\n  styles: [b.jpg]\n- [1, 2]\n- 2024-01-01\n")
    code, err = _cli([str(path), "-o", str(tmp_path / "out")], capsys)
    assert code == 1 and str(path) in err and "job 2" in err, err


# 5. job outputs checked before the first job runs ---------------------------------------------------------------------

@pytest.mark.slow
def test_bad_job_outputs_are_failed_each_and_the_others_run(wfile, tmp_path):
    """Outputs that leave the folder, name a non-image or the records: each job failed with its error; the others
    run; jobs.json is written."""
    bad = ["..", ".", "r.txt", "jobs.json", "sub/x.png", str(tmp_path / "abs.png"), "noext", ".png",
           "x" * 300 + ".png"]
    jobs = [_job(wfile)] + [_job(wfile, o, seed=k) for k, o in enumerate(bad, start=1)] + [_job(wfile, "ok.jpg")]
    out = tmp_path / "out"
    entries, summary = _run(jobs, out)
    statuses = [e.record["status"] for e in entries]
    assert statuses == ["done"] + ["failed"] * len(bad) + ["done"], [(e.record["output"], e.record.get("error"))
                                                                      for e in entries]
    for e in entries[1:-1]:
        assert "job " in e.record["error"] and "output" in e.record["error"], e.record["error"]
    assert os.path.exists(out / "ok.jpg") and not os.path.exists(tmp_path / "abs.png")
    assert not os.path.exists(out / "sub") and not os.path.exists(out / "r.txt")
    assert [r["status"] for r in _records(str(out))["jobs"]] == statuses
    assert sorted(os.listdir(out)) == sorted([os.path.basename(entries[0].path), "ok.jpg", batch_run.RECORDS])


@pytest.mark.slow
def test_an_output_that_is_a_folder_or_a_link_to_an_input_is_failed_before_work(wfile, tmp_path):
    out = tmp_path / "out"
    (out / "dir.png").mkdir(parents=True)
    c, _ = _images()
    os.symlink(c, out / "link.png")
    jobs = [_job(wfile, "dir.png"), _job(wfile, "link.png"), _job(wfile, "fine.png")]
    entries, _ = _run(jobs, out)
    assert [e.record["status"] for e in entries] == ["failed", "failed", "done"]
    assert "folder" in entries[0].record["error"]


# 6. a JPEG batch resumes ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("ext", [".jpg", ".jpeg"])
@pytest.mark.slow
def test_a_jpeg_batch_is_resumed_not_refused(wfile, tmp_path, ext):
    jobs = [_job(wfile, "a" + ext), _job(wfile, "b" + ext, seed=3, init="noise")]
    out = tmp_path / "out"
    entries, summary = _run(jobs, out)
    assert summary["done"] == 2
    stamp = os.stat(out / ("a" + ext)).st_mtime_ns
    lines = []
    entries, summary = _run(jobs, out, lines)
    assert "0 to run, 2 done before" in lines[0], [e.record for e in entries]
    assert all(e.record.get("earlier") for e in entries) and summary["failed"] == 0
    assert os.stat(out / ("a" + ext)).st_mtime_ns == stamp
    changed = [_job(wfile, "a" + ext, seed=4, init="noise")]
    entries, _ = _run(changed, out)
    assert entries[0].record["status"] == "done" and not entries[0].record.get("earlier")


def test_a_jpeg_not_written_by_a_batch_is_still_refused(wfile, tmp_path):
    from PIL import Image
    out = tmp_path / "out"
    out.mkdir()
    Image.new("RGB", (8, 8)).save(out / "a.jpg", comment=b"software=vggnumpy batch; settings=zzz")
    entries, _ = _run([_job(wfile, "a.jpg")], out)
    assert entries[0].record["status"] == "failed" and "not written by vggnumpy batch" in entries[0].record["error"]


# 7. the output folder -------------------------------------------------------------------------------------------------

def test_a_read_only_output_folder_is_refused_before_any_job_runs(wfile, tmp_path, monkeypatch, capsys):
    out = tmp_path / "ro"
    out.mkdir()
    os.chmod(out, stat.S_IRUSR | stat.S_IXUSR)
    if os.access(out, os.W_OK):                    # root writes anywhere: say it is read-only as a mount would
        real = os.access
        monkeypatch.setattr(os, "access", lambda p, mode, **k: False if (os.fspath(p) == str(out) and mode & os.W_OK)
                            else real(p, mode, **k))

    def never(*a, **k):
        raise AssertionError("a job ran")
    monkeypatch.setattr(batch, "run_task", never)
    c, s = _images()
    try:
        code, err = _cli(["--contents", c, "--styles", s, "-s", "40", "-n", "2", "--scales", "1", "--weights", wfile,
                          "-o", str(out)], capsys)
    finally:
        os.chmod(out, stat.S_IRWXU)
    assert code == 1 and str(out) in err and "not writable" in err and "-o" in err, err
    assert ".vggnumpy-" not in err and os.listdir(out) == []


def test_an_output_option_naming_a_file_says_so(tmp_path, capsys):
    f = tmp_path / "afile"
    f.write_text("x")
    c, s = _images()
    code, err = _cli(["--contents", c, "--styles", s, "-o", str(f)], capsys)
    assert code == 1 and f"-o {f}" in err and "not a folder" in err and "Errno" not in err, err
    code, err = _cli(["--contents", c, "--styles", s, "-o", str(f / "sub")], capsys)
    assert code == 1 and str(f) in err and "-o" in err and "Errno" not in err, err
    assert f.read_text() == "x"


def test_records_or_sheet_that_are_folders_are_refused_before_any_job_runs(wfile, tmp_path, monkeypatch):
    out = tmp_path / "out"
    (out / batch_run.RECORDS).mkdir(parents=True)
    ran = []
    monkeypatch.setattr(batch, "run_task", lambda *a, **k: ran.append(1))
    with pytest.raises(batch.BatchError) as e:
        _run([_job(wfile)], out)
    assert batch_run.RECORDS in str(e.value) and "folder" in str(e.value) and not ran
