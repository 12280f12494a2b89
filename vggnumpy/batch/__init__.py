"""Many pictures in one command: jobs from a grid or a job file and the small task each sends (jobs), running
them here or on Dask with resume and records (run, cluster), and the contact sheet (sheet). Imports run/ and
below.
"""
