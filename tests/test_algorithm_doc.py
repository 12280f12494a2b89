"""docs/algorithm.md and vggnumpy/learn/gradcheck.py: every check passes, each can fail, the doc's links and commands \
hold."""
import os
import re
import subprocess
import sys
import time

import numpy as np
import pytest

from conftest import ROOT, rel_error
from vggnumpy.learn import gradcheck
from vggnumpy.nn import preprocess
from vggnumpy.style import losses, objective
from vggnumpy.nn.kernels import conv, convgrad, pool, relu

DOC = os.path.join(ROOT, "docs", "algorithm.md")

# The backward each check stands for: doubling it must make that check fail. Every check is listed.
BACKWARDS = {
    "content": (losses, "content_backward"),
    "gram": (losses, "gram_stats_backward"),
    "style": (losses, "style_backward"),
    "guided-gram": (losses, "gram_stats_backward"),
    "tv": (losses, "tv_backward"),
    "temporal": (losses, "temporal_backward"),
    "conv": (conv, "backward"),
    "convweights": (convgrad, "_taps_s1"),
    "transformer": (convgrad, "_taps_s1"),
    "relu": (relu, "backward"),
    "maxpool": (pool, "backward"),
    "avgpool": (pool, "backward"),
    "preprocess": (preprocess, "preprocess_backward"),
    "network": (conv, "backward"),
    "objective": (objective, "preprocess_backward"),
}


def doc_text():
    with open(DOC, encoding="utf-8") as f:
        return f.read()


@pytest.fixture(scope="module")
def results():
    """run(name, 0) of every check, and the seconds they took together."""
    t = time.perf_counter()
    out = {name: gradcheck.run(name, 0) for name in gradcheck.CHECKS}
    return out, time.perf_counter() - t


def test_every_check_is_named_here():
    assert set(BACKWARDS) == set(gradcheck.CHECKS)
    assert {"content", "gram", "style", "guided-gram", "tv", "temporal", "conv", "relu", "maxpool", "avgpool",
            "preprocess", "network", "objective"} <= set(gradcheck.CHECKS)


@pytest.mark.parametrize("name", sorted(BACKWARDS))
@pytest.mark.slow
def test_every_check_passes(results, name):
    err, tol, description = results[0][name]
    assert err < tol, f"{name}: {description}: max relative error {err:.3g} >= {tol:g}"
    assert 0 < tol <= 1e-5 and "coordinates" in description


@pytest.mark.slow
def test_all_checks_take_under_30_seconds(results):
    assert results[1] < 30, f"gradcheck all took {results[1]:.1f} s"


@pytest.mark.parametrize("name", sorted(BACKWARDS))
@pytest.mark.slow
def test_each_check_fails_on_a_doubled_backward(name, monkeypatch):
    module, attr = BACKWARDS[name]
    right = getattr(module, attr)
    monkeypatch.setattr(module, attr, lambda *a, **k: 2 * right(*a, **k))
    err, tol, _ = gradcheck.run(name, 0)
    assert err >= tol and err > 0.1, f"{name} still passes with {module.__name__}.{attr} doubled ({err:.3g})"


def test_a_wrong_gram_gradient_is_caught(monkeypatch):
    """Not only a scale: the paper's dG F (no transpose term) instead of (dG + dG^T) F / n."""
    monkeypatch.setattr(losses, "gram_stats_backward",
                        lambda dg, n, f, mask=None: (dg @ f.reshape(f.shape[0], f.shape[1], -1)).reshape(f.shape) / n)
    err, tol, _ = gradcheck.run("gram", 0)
    assert err >= tol


def test_rel_error_is_the_tests_definition(rng):
    num, ana = rng.standard_normal(20), rng.standard_normal(20)
    ana[3] = num[3] = 1e-12
    assert gradcheck.rel_error(num, ana) == rel_error(num, ana)


LINK = re.compile(r"\[([^\]]+)\]\(\.\./vggnumpy/([\w/]+\.py)#L(\d+)\)")


def _definition_lines(lines, name):
    pat = re.compile(rf"\s*(def|class)\s+{re.escape(name)}\b")
    return [i + 1 for i, line in enumerate(lines) if pat.match(line)]


def test_doc_links_point_at_their_definitions():
    links = LINK.findall(doc_text())
    assert len(links) >= 30, "the doc's code links were not found"
    wrong = []
    for text, path, line in links:
        full = os.path.join(ROOT, "vggnumpy", path)
        if not os.path.isfile(full):
            wrong.append(f"[{text}]: vggnumpy/{path} does not exist")
            continue
        with open(full, encoding="utf-8") as f:
            lines = f.read().splitlines()
        parts = text.split(".")
        name, n = parts[-1], int(line)
        if n not in _definition_lines(lines, name):
            wrong.append(f"[{text}](../vggnumpy/{path}#L{line}): {name} is defined at line(s) "
                         f"{_definition_lines(lines, name) or 'nowhere'}")
            continue
        stem = os.path.splitext(os.path.basename(path))[0]
        for owner in parts[:-1]:                   # module names, or a class that must enclose the definition
            if owner in path.split("/") or owner == stem:
                continue
            starts = _definition_lines(lines, owner)
            if not starts or min(starts) > n:
                wrong.append(f"[{text}]: no class {owner} before line {n} of vggnumpy/{path}")
    assert not wrong, "\n".join(wrong)


def test_doc_plain_links_exist():
    targets = re.findall(r"\]\((\.\./[^)#]+)(?:#[^)]*)?\)", doc_text())
    assert targets
    missing = [t for t in targets if not os.path.exists(os.path.normpath(os.path.join(ROOT, "docs", t)))]
    assert not missing, missing


def test_doc_commands_name_existing_checks():
    names = re.findall(r"python -m vggnumpy\.learn\.gradcheck +(?!-)([\w-]+)", doc_text())
    assert names
    unknown = sorted(set(names) - set(gradcheck.CHECKS) - {"all"})
    assert not unknown, f"docs/algorithm.md runs checks that do not exist: {unknown}"
    untold = sorted(set(gradcheck.CHECKS) - set(names))
    assert not untold, f"docs/algorithm.md never shows the command of: {untold}"


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "vggnumpy.learn.gradcheck", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)


def test_cli_refuses_an_unknown_name_without_a_traceback():
    p = _cli("nosuchcheck")
    assert p.returncode == 1
    assert "unknown check 'nosuchcheck'" in p.stderr and "content" in p.stderr
    assert "Traceback" not in p.stderr + p.stdout


def test_cli_lists_runs_and_fails(monkeypatch, capsys):
    p = _cli("--list")
    assert p.returncode == 0 and p.stderr == ""
    assert [line.split()[0] for line in p.stdout.splitlines()] == list(gradcheck.CHECKS)
    p = _cli("relu", "--seed", "3")
    assert p.returncode == 0 and "PASS" in p.stdout and "kernels.relu.backward" in p.stdout
    capsys.readouterr()
    monkeypatch.setattr(relu, "backward", lambda dout, cache: np.zeros_like(dout))
    assert gradcheck.main(["relu"]) == 1
    assert "FAIL" in capsys.readouterr().out


def test_import_has_no_side_effects():
    p = subprocess.run([sys.executable, "-c", "import vggnumpy.learn.gradcheck"], cwd=ROOT, capture_output=True,
                       text=True, timeout=60)
    assert p.returncode == 0 and p.stdout == p.stderr == ""
