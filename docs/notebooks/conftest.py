"""pytest --nbmake docs/notebooks runs every notebook at its small size (the knob in each notebook's first cell)."""
import os

os.environ["VGGNUMPY_NOTEBOOK_SIZE"] = "small"
