"""The `vggnumpy` command: the parser and main (main), the style options made from config.Options (options),
signal handling (signals), and one module per command group (batch, explain, weights). The top layer.
"""
