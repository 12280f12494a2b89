"""The job description: one set of defaults per network, the CLI and stylize made from it, JSON and pickle, the \
schedule."""
import dataclasses
import inspect
import pickle
import warnings

import numpy as np
import pytest

from vggnumpy.run import pipeline as api, schedule
from vggnumpy import config
from vggnumpy.cli.main import build_parser
from vggnumpy.cli.options import default_text
from vggnumpy.weights.file import random_weights

NETWORK_KEYS = ["scales", "iterations", "coarse_share", "content_weight", "style_weight", "tv_weight", "pooling",
                "init"]


def _images():
    rng = np.random.default_rng(0)
    return rng.random((40, 40, 3), dtype=np.float32), rng.random((40, 40, 3), dtype=np.float32)


def _run(trained, **kw):
    w = dataclasses.replace(random_weights("vgg16", 0), trained=trained)
    logs = []
    content, style = _images()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", api.UntrainedWeightsWarning)
        res = api.stylize(content, [style], size=40, weights=w, progress=False, log=logs.append, **kw)
    return res, "\n".join(logs)


def _style_parser():
    return build_parser()._subparsers._group_actions[0].choices["style"]


def test_both_sets_hold_the_same_keys_and_differ_where_it_matters():
    n = config.NETWORK_DEFAULTS
    assert sorted(n["pretrained"]) == sorted(n["untrained"]) == sorted(NETWORK_KEYS)
    for f in config.fields():                     # a network option has no default of its own, and vice versa
        assert (f.name in NETWORK_KEYS) == f.metadata["network"] == (f.name in NETWORK_KEYS and f.default is None)
    assert n["pretrained"]["style_weight"] != n["untrained"]["style_weight"]


@pytest.mark.parametrize("trained", [True, False])
@pytest.mark.slow
def test_a_run_takes_the_set_of_its_network(trained):
    d = config.NETWORK_DEFAULTS["pretrained" if trained else "untrained"]
    res, log = _run(trained, iterations=6)
    assert res.iterations == 6                    # -n is the budget over every scale
    assert f"{d['pooling']} pooling" in log
    assert log.count(" px x ") == d["scales"]     # the schedule has the set's number of scales


@pytest.mark.slow
def test_given_options_win_over_either_set():
    res, log = _run(True, scales=2, iterations=3, pooling="max", coarse_share=5)
    assert res.iterations == 3 and "max pooling" in log and "20 px x 2, 40 px x 1" in log


def test_cli_leaves_network_options_unset_and_names_both_defaults():
    args = build_parser().parse_args(["style", "c.jpg", "s.jpg"])
    for key in NETWORK_KEYS:
        assert not hasattr(args, key), key        # so that stylize picks the network's set
    helptext = " ".join(_style_parser().format_help().split())
    n = config.NETWORK_DEFAULTS
    assert f"{n['pretrained']['style_weight']:g} with pretrained weights, {n['untrained']['style_weight']:g} " \
           f"untrained" in helptext


def test_cli_stylize_and_options_have_the_same_options():
    fields = {f.name for f in config.fields()}
    cli = {a.dest for a in _style_parser()._actions} - {"help", "content", "styles", "output"}
    params = set(inspect.signature(api.stylize).parameters) - {"content", "styles", "output", "log", "on_step", "stop"}
    assert cli == fields == params
    for f in config.fields():                     # every option's help names its default, where it has one
        assert default_text(f) in " ".join(_style_parser().format_help().split())


def test_stylize_refuses_an_unknown_option():
    content, style = _images()
    with pytest.raises(config.OptionError, match="iteratons"):
        api.stylize(content, [style], iteratons=3)


def test_a_job_survives_json_and_pickle():
    o = config.make(size=256, style_layers=["relu1_1", "relu2_1"], style_weight=5, scale_iterations=[4, 2],
                    gif="a.gif", original_colors=True)
    job = config.Job("c.jpg", ("s1.jpg", "s2.jpg"), "o.png", o)
    again = config.Job.from_json(job.to_json())
    assert again == job and pickle.loads(pickle.dumps(job)) == job
    assert isinstance(again.options.style_layers, tuple)
    with pytest.raises(config.OptionError, match="--size"):
        config.Job.from_json(job.to_json().replace('"size": 256', '"size": 1e9'))


@pytest.mark.parametrize("total, n, want", [(180, 2, [150, 30]), (110, 3, [50, 50, 10]), (3, 2, [2, 1]),
                                            (3, 1, [3]), (0, 3, [0, 0, 0]), (1, 2, [0, 1]), (7, 1, [7]),
                                            (1000, 4, [313, 312, 312, 63])])
def test_the_budget_is_split_over_the_scales(total, n, want):
    assert schedule.split(total, n) == want and sum(want) == total


@pytest.mark.parametrize("total, n, share, want", [(48, 2, 0.7, [20, 28]), (180, 2, 5.0, [150, 30]),
                                                   (10, 3, 0.0, [0, 0, 10]), (1, 2, 0.7, [0, 1])])
def test_a_coarse_share_splits_the_budget(total, n, share, want):
    """--coarse-share: each coarser scale gets `share` iterations per one at the full size (rounded)."""
    assert schedule.split(total, n, share) == want and sum(want) == total


@pytest.mark.slow
def test_minus_n_3_runs_3_iterations_over_two_scales():
    res, log = _run(False, iterations=3, scales=2)
    assert res.iterations == 3 and len(res.history) == 3


@pytest.mark.slow
def test_scale_iterations_override_the_split():
    res, log = _run(True, scale_iterations=[2, 1])
    assert "20 px x 2, 40 px x 1" in log and res.iterations == 3
