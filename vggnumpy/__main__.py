"""python -m vggnumpy: the same as the vggnumpy command."""
import sys

from .cli.main import main

sys.exit(main())
