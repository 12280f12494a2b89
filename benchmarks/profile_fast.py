"""Where `vggnumpy fast`'s forward pass spends its time: each unit's convolution and whole unit, with the FFT route
(conv.FFT_MIN_KERNEL) on and off alternating in one process; --ab times whole passes with the FFT and phase
routes on against both off (the routes before issue 26's speed work).

    python benchmarks/profile_fast.py                       # the shipped starry_night, 1200x632
    python benchmarks/profile_fast.py --ab --rounds 8
    python benchmarks/profile_fast.py --model M.h5 --size 512x512

Run it alone: the numbers are wall-clock times of a 2-core machine.
"""
import argparse
import collections
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

MODES = {"fft": dict(FFT_MIN_KERNEL=7), "direct": dict(FFT_MIN_KERNEL=99)}
AB = {"new": dict(FFT_MIN_KERNEL=7, PHASE_STRIDES=(2,)), "old": dict(FFT_MIN_KERNEL=99, PHASE_STRIDES=())}


def _set(conv, settings):
    for k, v in settings.items():
        setattr(conv, k, v)


def profile(net, x, rounds, apply, conv):
    """{(mode, unit, 'conv' or 'unit'): [seconds]} over rounds of both MODES."""
    tot, cur = collections.defaultdict(list), {}
    unit_fn, conv_fn = apply._unit, net.k["conv"].forward

    def timed_unit(net_, u, h, stats, collect):
        cur["u"] = u.name
        t = time.perf_counter()
        out = unit_fn(net_, u, h, stats, collect)
        tot[(cur["mode"], u.name, "unit")].append(time.perf_counter() - t)
        return out

    def timed_conv(*a, **k):
        t = time.perf_counter()
        out = conv_fn(*a, **k)
        tot[(cur["mode"], cur["u"], "conv")].append(time.perf_counter() - t)
        return out
    apply._unit = timed_unit
    net.k = dict(net.k, conv=type("Timed", (), {"forward": staticmethod(timed_conv)}))
    for _ in range(rounds):
        for mode, settings in MODES.items():
            _set(conv, settings)
            cur["mode"] = mode
            apply.forward(net, x.copy())
    return tot


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="starry_night")
    p.add_argument("--size", default="1200x632", help="WIDTHxHEIGHT, multiples of 4")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--ab", action="store_true", help="whole passes: new routes against old, alternating")
    a = p.parse_args()
    import bench_fast
    from vggnumpy.feedforward import apply, fast
    from vggnumpy.nn.kernels import conv
    w, h = (int(v) for v in a.size.lower().split("x"))
    net, _ = fast.load_network(a.model, "cpu")
    x = bench_fast.photo(w, h)
    apply.forward(net, x.copy())                                    # warm-up
    if a.ab:
        res = {k: [] for k in AB}
        for _ in range(a.rounds):
            for mode, settings in AB.items():
                _set(conv, settings)
                t = time.perf_counter()
                apply.forward(net, x.copy())
                res[mode].append(time.perf_counter() - t)
        for k, v in res.items():
            print(f"{k}: median {np.median(v):.3f} s, min {min(v):.3f} s")
        print("new/old per round:", " ".join(f"{r:.2f}" for r in np.array(res["new"]) / np.array(res["old"])))
        return
    tot = profile(net, x, a.rounds, apply, conv)
    print("| unit | conv, FFT on (ms) | conv, FFT off (ms) | whole unit, FFT on (ms) |\n|---|---|---|---|")
    for u in net.units:
        med = {k: 1000 * np.median(tot[k]) for k in [("fft", u.name, "conv"), ("direct", u.name, "conv"),
                                                       ("fft", u.name, "unit")]}
        print(f"| {u.name} | " + " | ".join(f"{v:.0f}" for v in med.values()) + " |")


if __name__ == "__main__":
    main()
