"""The sorted-group helpers of ``costing/frames.py``: hand-made frames, hand-computed results."""

import polars as pl
import pytest

from cost_assets.costing.frames import cumsum_within, ffill_within, group_starts, sum_within


def test_sum_within_sums_each_run_of_equal_keys():
    frame = pl.DataFrame(
        {
            "k": [1, 1, 1, 2, 2, 1],  # the last 1 is a new run: runs, not hash groups
            "h": [0, 0, 1, 1, 1, 1],
            "x": [0.5, 0.25, 1.0, 2.0, 3.0, 4.0],
            "y": [1.0, 1.0, 1.0, 1.0, 1.0, 1.0],
        }
    )
    out = sum_within(frame, ["k", "h"], ["x", "y"])
    # Runs: (1,0) rows 0–1 → x 0.5 + 0.25 = 0.75, y 2; (1,1) row 2 → 1.0, 1; (2,1) rows 3–4 → 5.0, 2;
    # (1,1) row 5 → 4.0, 1.
    assert out.rows() == [(1, 0, 0.75, 2.0), (1, 1, 1.0, 1.0), (2, 1, 5.0, 2.0), (1, 1, 4.0, 1.0)]
    assert out.columns == ["k", "h", "x", "y"]


def test_sum_within_of_an_empty_frame_is_empty_with_the_columns():
    frame = pl.DataFrame({"k": [], "x": []}, schema={"k": pl.Int64, "x": pl.Float64})
    out = sum_within(frame, ["k"], ["x"])
    assert out.height == 0 and out.schema == frame.schema


def test_within_helpers_restart_at_each_group():
    frame = pl.DataFrame({"g": ["a", "a", "a", "b", "b"], "v": [1, None, 3, None, 5]})
    start = group_starts("g")
    out = frame.select(
        start.alias("s"),
        ffill_within(pl.col("v"), start).alias("f"),
        cumsum_within(pl.col("v").fill_null(0), start).alias("c"),
    )
    assert out["s"].to_list() == [True, False, False, True, False]
    # b's first value is null and must not inherit a's 3.
    assert out["f"].to_list() == [1, 1, 3, None, 5]
    # a: 1, 1, 4; b restarts: 0, 5.
    assert out["c"].to_list() == pytest.approx([1, 1, 4, 0, 5])
