"""Messages for the person at the terminal: one line to standard error (the outputs and reports keep stdout)."""
import sys


def stderr(msg):
    """Print msg to standard error (sys.stderr as it is now, so a test's capture sees it): the log= of the command
    line's runs, downloads and batches."""
    print(msg, file=sys.stderr)
