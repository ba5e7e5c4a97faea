"""The figures are counted, not written down: an unknown figure is refused, and every
registered one is printed (rows lost/doubled saying so when nothing was checked)."""

from __future__ import annotations

import pytest

from faults import figures


def test_a_figure_must_be_registered_before_it_is_counted():
    with pytest.raises(KeyError, match="not registered"):
        figures.add("workers_killed_by_typo")


def test_every_registered_figure_is_printed_with_its_count():
    lines = figures.summary_lines()
    assert len(lines) == len(figures.registered()) >= 17
    for figure, line in zip(figures.registered(), lines, strict=True):
        assert line.startswith(f"{figure.label}: ")
        if not line.endswith("(no convergence check ran)"):
            assert line == f"{figure.label}: {figures.get(figure.key):,}"
