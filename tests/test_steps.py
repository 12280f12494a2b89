"""The run as a stream of steps (run/steps.py): the events in order, the pipeline's own state (best iterate and
trace), a video frame's terms and start passed as arguments, and listeners that only hear events."""
import dataclasses
import warnings

import numpy as np
import pytest

from vggnumpy import config, optim
from vggnumpy.run import pipeline as api, schedule, steps
from vggnumpy.style import terms
from vggnumpy.weights.file import random_weights


def _images():
    rng = np.random.default_rng(0)
    return rng.random((36, 40, 3), dtype=np.float32), rng.random((40, 40, 3), dtype=np.float32)


def _setup(**kw):
    content, style = _images()
    job = config.Job(content, (style,), None, config.make(size=40, progress=False, **kw))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", api.UntrainedWeightsWarning)
        setup, _, _ = api.prepare(job, random_weights("vgg19", 0), lambda m: None)
    o = setup.options
    levels = schedule.levels(o.size, o.scales, o.iterations, o.scale_iterations, o.init, setup.content.shape[:2],
                             setup.min_side, o.coarse_share)
    state = steps.RunState(sum(level.iterations for level in levels), setup.photo, False, lambda: 0.0)
    return setup, levels, state


@pytest.mark.slow
def test_the_stream_yields_each_scale_its_steps_and_one_end_in_order():
    setup, levels, state = _setup(scale_iterations=[3, 2])
    events = list(steps.stream(setup, state, levels))
    kinds = [type(e).__name__ for e in events]
    assert kinds == ["ScaleStarted", "Step", "Step", "Step", "ScaleStarted", "Step", "Step", "Finished"]
    assert [e.iteration for e in events if type(e).__name__ == "Step"] == [1, 2, 3, 1, 2]
    assert [e.shape[1:] for e in events if isinstance(e, steps.ScaleStarted)] == [(18, 20), (36, 40)]
    end = events[-1]
    assert end.image.shape == (36, 40, 3) and end.interrupted == ""


@pytest.mark.slow
def test_the_best_iterate_and_the_trace_are_the_streams_own_state():
    setup, levels, state = _setup(scale_iterations=[2, 4])
    events = list(steps.stream(setup, state, levels))
    step_losses = [e.loss for e in events if type(e).__name__ == "Step"]
    assert [row["iteration"] for row in state.trace] == [1, 2, 3, 4, 5, 6]
    assert [row["loss"] for row in state.trace] == step_losses
    assert events[-1].loss == state.best.loss == pytest.approx(min(step_losses[2:]))    # the last scale's best
    np.testing.assert_array_equal(events[-1].image, state.host_image(state.best.x))
    assert state.finished_evaluations > 6


@pytest.mark.parametrize("keep_best, kept", [(True, 1.0), (False, 2.0)])
def test_best_keeps_the_lowest_loss_or_the_last(keep_best, kept):
    best = steps.Best(keep_best)
    for loss in (3.0, 1.0, 2.0):
        best.fold(optim.Step(1, np.full(2, loss, dtype=np.float32), loss, {"x": loss}))
    assert best.loss == kept and best.x[0] == kept and best.parts == {"x": kept}


@pytest.mark.slow
def test_stop_ends_the_stream_with_the_reason_and_the_best_image_so_far():
    setup, levels, state = _setup(scale_iterations=[5])
    asked = []
    stop = lambda: "SIGINT" if len(state.trace) >= 2 and asked.append(1) is None else ""
    events = list(steps.stream(setup, state, levels, stop))
    assert events[-1].interrupted == "SIGINT" and len(state.trace) == 2
    assert events[-1].loss == pytest.approx(min(row["loss"] for row in state.trace))


@pytest.mark.slow
def test_a_video_frame_passes_its_terms_and_start_as_arguments():
    """extra_terms is asked for each scale's terms at that scale's size; start is where the first scale starts."""
    setup, levels, state = _setup(scale_iterations=[2, 1])
    start = np.full(setup.content.shape, 0.25, dtype=np.float32)
    asked = []

    def extra(shape, xp):
        asked.append(tuple(shape))
        target = xp.asarray(np.zeros((1, 3) + tuple(shape), dtype=np.float32))
        return [terms.TemporalTerm(1.0, target, xp.ones(shape, dtype=xp.float32), name="held")]

    setup = dataclasses.replace(setup, extra_terms=extra, start=start)
    first = []
    events = steps.stream(setup, state, levels)
    next(events)                                                   # the first ScaleStarted
    x = state.objective
    real = x.evaluate
    x.evaluate = lambda img, **kw: (first.append(np.array(img)), real(img, **kw))[1]
    rest = list(events)
    assert asked == [(18, 20), (36, 40)]
    assert all("held" in e.parts for e in rest if type(e).__name__ == "Step")
    np.testing.assert_allclose(first[0].transpose(1, 2, 0), 0.25)      # from start, resized to the first scale


@pytest.mark.slow
def test_listeners_hear_every_event_and_abort_when_the_run_raises(monkeypatch):
    heard = []

    class Ear(api.listeners.Listener):
        def start(self, run):
            heard.append("start")

        def scale(self, run):
            heard.append(f"scale {run.scale_index}")

        def step(self, run, step):
            heard.append(f"step {run.base + step.iteration}")
            if run.base + step.iteration == 3:
                raise RuntimeError("a listener failed")

        def abort(self, run):
            heard.append("abort")

    monkeypatch.setattr(api, "_listeners", lambda *a: ([Ear()], None))
    content, style = _images()
    with warnings.catch_warnings(), pytest.raises(RuntimeError, match="a listener failed"):
        warnings.simplefilter("ignore", api.UntrainedWeightsWarning)
        api.stylize(content, [style], size=40, weights=random_weights("vgg19", 0), progress=False,
                    log=lambda m: None, scale_iterations=[2, 2])
    assert heard == ["start", "scale 0", "step 1", "step 2", "scale 1", "step 3", "abort"]
