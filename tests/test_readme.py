"""The README says what the code does: its options table is the one config.Options makes, and its commands exist."""
import os

from conftest import ROOT
from vggnumpy.cli.options import options_table


def _readme():
    return open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()


def test_the_options_table_is_made_from_the_job_description():
    table = options_table()
    assert table in _readme(), "README's options table is stale; replace it with:\n" + table


def test_the_install_line_is_the_one_ci_runs():
    ci = open(os.path.join(ROOT, ".ci", "run")).read()
    line = [row for row in ci.splitlines() if row.startswith("pip install")][0]
    assert line in _readme()


def test_the_video_options_table_is_made_from_the_job_description():
    from vggnumpy import config
    table = options_table(config.VideoOptions)
    assert table in _readme(), "README's video options table is stale; replace it with:\n" + table


def test_the_training_options_table_is_made_from_the_job_description():
    from vggnumpy import config
    table = options_table(config.TrainOptions)
    assert table in _readme(), "README's training options table is stale; replace it with:\n" + table
