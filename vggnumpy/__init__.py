"""vggnumpy: neural style transfer with a hand-written VGG in NumPy (and CuPy), optimised by L-BFGS."""
from .api import Result, stylize
from .video import VideoResult, stylize_video

__version__ = "0.1.0"
__all__ = ["stylize", "Result", "stylize_video", "VideoResult", "__version__"]
