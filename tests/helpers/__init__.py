"""Helpers more than one test module uses, each module named for what it provides.

Test modules import shared code from here (or from tests/cli.py, tests/webhelpers.py, tests/media.py and the
conftest.py fixtures), never from one another.
"""
