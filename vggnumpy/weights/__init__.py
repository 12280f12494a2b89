"""Network weights: our HDF5 weight file (file: schema, loader, writer, the untrained network), the safe HDF5
walker every reader uses (hdf5), readers of every public VGG/NIN release (convert/) and the downloads
(download). Imports files/ and nn/.
"""
