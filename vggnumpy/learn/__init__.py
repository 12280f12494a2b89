"""For learners: the network as a table of shapes, costs and receptive fields (explain), pictures of feature
maps and Gram matrices (lookinside), loss curves (plot), every hand-written gradient checked by finite
differences (gradcheck) and the demo's own pictures (demo). Imports nn/, weights/, style/ and files/.
"""
