"""Files in and out, the bottom layer: where files go and how they are written and checked (paths: atomic writes
with the umask's mode, inputs that must be regular files, outputs that must not overwrite inputs) and images read
and written as float32 RGB in [0, 1] (images), and the one way a message goes to standard error (log). Imports
nothing of vggnumpy.
"""
