"""One styled picture, from a job to the image: the pipeline (pipeline: stylize and run), the coarse-to-fine
schedule (schedule), the memory plan (memory) and the listeners that hear every step (listeners: progress bar,
frames, trace, plots). Imports the layers below it: files/, nn/, weights/, style/, optim/, learn/.
"""
