"""The two default sets (pretrained and untrained network): which one a run takes, and what the CLI says of them."""
import dataclasses
import warnings

import numpy as np
import pytest

from vggnumpy import transfer
from vggnumpy.cli import build_parser
from vggnumpy.weights import random_weights

NETWORK_KEYS = ["scales", "iterations", "initial_iterations", "content_weight", "style_weight", "tv_weight", "pooling"]


def _images():
    rng = np.random.default_rng(0)
    return rng.random((40, 40, 3), dtype=np.float32), rng.random((40, 40, 3), dtype=np.float32)


def _run(trained, **kw):
    w = dataclasses.replace(random_weights("vgg16", 0), trained=trained)
    logs = []
    content, style = _images()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", transfer.UntrainedWeightsWarning)
        res = transfer.stylize(content, [style], size=40, weights=w, progress=False, log=logs.append, **kw)
    return res, "\n".join(logs)


def test_both_sets_hold_the_same_keys_and_differ_where_it_matters():
    n = transfer.NETWORK_DEFAULTS
    assert sorted(n["pretrained"]) == sorted(n["untrained"]) == sorted(NETWORK_KEYS)
    assert not set(NETWORK_KEYS) & set(transfer.DEFAULTS)       # each option is defined in one place only
    assert n["pretrained"]["style_weight"] != n["untrained"]["style_weight"]


@pytest.mark.parametrize("trained", [True, False])
def test_a_run_takes_the_set_of_its_network(trained):
    d = transfer.defaults_for(trained)
    res, log = _run(trained, iterations=3, initial_iterations=2)
    # The pyramid comes from the set: 1 scale -> 3 iterations; 2 scales -> 2 + 3.
    assert res.iterations == 3 + 2 * (d["scales"] - 1)
    assert f"{d['pooling']} pooling" in log


def test_given_options_win_over_either_set():
    res, log = _run(True, scales=2, iterations=2, initial_iterations=1, pooling="max")
    assert res.iterations == 3 and "max pooling" in log


def test_cli_leaves_network_options_unset_and_names_both_defaults():
    p = build_parser()
    args = p.parse_args(["style", "c.jpg", "s.jpg"])
    for key in NETWORK_KEYS:
        assert getattr(args, key) is None, key                  # so that stylize picks the network's set
    helptext = p._subparsers._group_actions[0].choices["style"].format_help()
    n = transfer.NETWORK_DEFAULTS
    assert f"{n['pretrained']['style_weight']:g} with pretrained weights, {n['untrained']['style_weight']:g} " \
           f"untrained" in " ".join(helptext.split())
