"""vggnumpy: neural style transfer with a hand-written VGG in NumPy (and CuPy), optimised by L-BFGS.

The package is layered; each layer imports only those before it (tests/test_layers.py checks it):
files < nn < weights < style < optim < learn < config < run < feedforward < video, batch < cli.
`import vggnumpy` loads nothing else: stylize, Result, stylize_video, VideoResult, fast and train are loaded on
first use (PEP 562).
"""
__version__ = "0.1.0"
__all__ = ["stylize", "Result", "stylize_video", "VideoResult", "fast", "train", "__version__"]

_LAZY = {"stylize": "run.pipeline", "Result": "run.pipeline", "stylize_video": "video.clip",
         "VideoResult": "video.clip", "fast": "feedforward.fast", "train": "feedforward.train"}


def __getattr__(name):
    if name not in _LAZY:
        raise AttributeError(f"module 'vggnumpy' has no attribute {name!r}")
    import importlib
    return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)


def __dir__():
    return sorted(list(globals()) + list(_LAZY))
