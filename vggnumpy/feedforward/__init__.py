"""Real-time style (Johnson et al. 2016): train the transformer network (nn/transformer.py) for one painting on the
perceptual losses of style/, through our VGG, with hand-written weight gradients (train), keep it in its own HDF5
file (model), and paint any photo with it in one forward pass, tile by tile when large, exactly (apply).
Imports files/, nn/, weights/, style/, optim/, config and run/ (its listeners)."""
