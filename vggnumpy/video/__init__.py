"""Video: frames in and out (frames: PyAV or folders of numbered images), optical flow and its consistency
check (flow), and the frame loop that styles each frame held to the last (clip). Imports run/ and below.
"""
