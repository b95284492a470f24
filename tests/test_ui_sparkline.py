"""The Select loop panel's sparkline draws exactly what Textual's does."""

from __future__ import annotations

import io
import random

import pytest
from rich.color import Color
from rich.console import Console
from rich.segment import Segment
from rich.style import Style
from textual.renderables.sparkline import Sparkline

from devconsole.ui.widgets.sparkline import sparkline_rows

LOW, HIGH = Color.from_rgb(20, 40, 60), Color.from_rgb(230, 120, 10)


def textual_rows(data: list[float], width: int, height: int) -> list[list[tuple[str, Style | None]]]:
    console = Console(width=width, color_system="truecolor", file=io.StringIO())
    renderable = Sparkline(data, width=width, height=height, min_color=LOW, max_color=HIGH)
    lines = Segment.split_lines(console.render(renderable, console.options.update_width(width)))
    return [[(segment.text, segment.style or Style()) for segment in line] for line in lines]


def our_rows(data: list[float], width: int, height: int) -> list[list[tuple[str, Style | None]]]:
    return [
        [(segment.text, segment.style) for segment in row]
        for row in sparkline_rows(data, width, height, LOW, HIGH, Style())
    ]


@pytest.mark.parametrize("seed", range(40))
def test_the_same_bars_and_colours_as_textuals_sparkline(seed: int) -> None:
    chance = random.Random(seed)
    width, height = chance.randint(1, 90), chance.randint(1, 6)
    data = [chance.choice([0.0, 0.0, 1.0, chance.random() * 500]) for _ in range(chance.randint(2, 130))]
    assert our_rows(data, width, height) == textual_rows(data, width, height)


@pytest.mark.parametrize("data", [[], [7.0], [0.0] * 60, [0.0] * 59 + [3.0]])
def test_edge_cases_look_the_same(data: list[float]) -> None:
    assert our_rows(data, 51, 4) == textual_rows(data, 51, 4)
