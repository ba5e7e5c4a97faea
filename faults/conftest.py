"""The faults-and-attacks suite's fixtures, and its figures printed at the end of the run."""

from __future__ import annotations

import pytest

from faults import figures
from faults.world import World, build_world


@pytest.fixture
def world(db) -> World:
    """A victim workspace full of real objects, an outsider workspace, a staff user."""
    return build_world()


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:  # pytest's hook
    if not figures.anything():
        return  # no test of this suite ran (e.g. only another app's tests were selected)
    terminalreporter.section("faults and attacks (issue 8, section 3)")
    for line in figures.summary_lines():
        terminalreporter.write_line(line)
