"""The inline SVG chart helper: ticks, accessibility text, escaping, empty data."""

from __future__ import annotations

import itertools
import xml.etree.ElementTree as ET

from web.pages.charts import bar_chart, line_chart, nice_ticks

SVG = "{http://www.w3.org/2000/svg}"


def parse(markup: str) -> ET.Element:
    # The charts are inline in HTML without a namespace; add it to parse as XML.
    namespaced = str(markup).replace("<svg ", '<svg xmlns="http://www.w3.org/2000/svg" ', 1)
    return ET.fromstring(namespaced)


def test_nice_ticks_cover_the_maximum_with_round_steps() -> None:
    assert nice_ticks(0) == [0.0, 1.0]
    assert nice_ticks(10) == [0, 2, 4, 6, 8, 10]
    ticks = nice_ticks(37)
    assert ticks[0] == 0 and ticks[-1] >= 37
    steps = {round(b - a, 6) for a, b in itertools.pairwise(ticks)}
    assert steps == {10.0}
    assert nice_ticks(0.3)[-1] >= 0.3
    assert nice_ticks(1234)[-1] >= 1234


def test_bar_chart_has_title_desc_axes_and_one_bar_per_value() -> None:
    svg = parse(
        bar_chart(
            ["1★", "2★", "3★"], [0, 2, 5], title="Ratings", x_label="Rating", y_label="Reviews"
        )
    )
    assert svg.get("role") == "img"
    title_id, desc_id = svg.get("aria-labelledby").split()
    assert svg.find(f"{SVG}title").get("id") == title_id
    assert svg.find(f"{SVG}title").text == "Ratings"
    desc = svg.find(f"{SVG}desc")
    assert desc.get("id") == desc_id and "3★: 5" in desc.text and "Reviews by Rating" in desc.text
    bars = svg.findall(f"{SVG}rect")
    assert len(bars) == 3
    heights = [float(b.get("height")) for b in bars]
    assert heights[0] == 0 and heights[2] > heights[1] > 0
    texts = [t.text for t in svg.findall(f"{SVG}text")]
    assert "Rating" in texts and "Reviews" in texts and "1★" in texts and "5" in texts
    assert len(svg.findall(f"{SVG}line")) >= 3  # grid lines and both axes


def test_line_chart_points_and_polyline() -> None:
    svg = parse(line_chart(["a", "b", "c", "d"], [1, 3, 2, 4], title="Attendance"))
    assert len(svg.findall(f"{SVG}circle")) == 4
    line = svg.find(f"{SVG}polyline")
    assert line is not None and len(line.get("points").split()) == 4
    ys = [float(c.get("cy")) for c in svg.findall(f"{SVG}circle")]
    assert ys[3] < ys[0]  # higher value → nearer the top


def test_empty_and_single_value_charts() -> None:
    empty = parse(line_chart([], [], title="Nothing"))
    assert "No data yet" in "".join(t.text or "" for t in empty.findall(f"{SVG}text"))
    single = parse(line_chart(["only"], [3], title="One"))
    assert single.find(f"{SVG}polyline") is None and len(single.findall(f"{SVG}circle")) == 1


def test_labels_are_escaped_and_ids_unique() -> None:
    a = bar_chart(["<script>"], [1], title="<b>t</b>")
    b = bar_chart(["x"], [1], title="t")
    assert "<script>" not in a and "&lt;script&gt;" in a and "<b>" not in a
    assert parse(a).get("aria-labelledby") != parse(b).get("aria-labelledby")


def test_many_labels_are_thinned() -> None:
    labels = [f"d{i}" for i in range(40)]
    svg = parse(bar_chart(labels, list(range(40)), title="Busy"))
    shown = [t.text for t in svg.findall(f"{SVG}text") if (t.text or "").startswith("d")]
    assert 0 < len(shown) <= 13


def test_integer_ticks_for_counts() -> None:
    assert nice_ticks(1, integer=True) == [0, 1]
    assert nice_ticks(2, integer=True) == [0, 1, 2]
    assert all(t == int(t) for t in nice_ticks(7, integer=True))
    svg = parse(bar_chart(["a", "b"], [1, 1], title="Counts"))
    ticks = [t.text for t in svg.findall(f"{SVG}text") if t.get("class") == "chart-tick"]
    assert "0.2" not in ticks and "1" in ticks
