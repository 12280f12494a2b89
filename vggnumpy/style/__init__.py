"""The losses of the paper on top of the network: content and Gram style losses with their gradients (losses),
the loss terms an objective sums (terms), the objective itself (objective), its exact tile-by-tile evaluation
(tiling), region masks brought to each layer's grid (masks) and colour control (color). Imports nn/ and files/.
"""
