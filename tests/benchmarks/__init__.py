"""BackCalm's performance benchmarks: `python -m tests.benchmarks` (`make bench`).

Every figure that has a target is measured side by side with what it is compared to, in the
same run, on the same machine: the bot runs as a real `python -m bot` process against the
fake Bot API server in this process, and the designs it is compared with run the same way.
Nothing here asserts a timing; `tests/test_benchmarks_smoke.py` only checks that `--quick`
produces every measure.
"""
