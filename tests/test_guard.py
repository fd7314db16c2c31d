"""The guard's verdicts, day by day, on hand-made stored and new answers (cost_assets/guard.py)."""

import datetime as dt

import polars as pl
import pytest

from cost_assets import guard

D1, D2, D3 = dt.date(2026, 1, 1), dt.date(2026, 1, 2), dt.date(2026, 1, 3)


def bill(*rows: tuple[dt.date, str, float]) -> pl.DataFrame:
    return pl.DataFrame(
        [
            {"usage_date": d, "record_type": t, "usage_quantity": q, "record_id": f"r{i}"}
            for i, (d, t, q) in enumerate(rows)
        ],
        schema={"usage_date": pl.Date, "record_type": pl.String, "usage_quantity": pl.Float64, "record_id": pl.String},
    )


STORED = bill((D1, "ORIGINAL", 60.0), (D1, "ORIGINAL", 40.0), (D2, "ORIGINAL", 10.0))


def verdicts(new: pl.DataFrame, stored: pl.DataFrame = STORED, threshold: float = 0.5) -> dict:
    return {
        c.day: c.reason for c in guard.check_days("raw.billing_usage", stored, new, [D1, D2, D3], guard.BILL, threshold)
    }


def test_an_empty_answer_for_stored_days_is_refused_and_a_never_stored_day_is_not():
    got = verdicts(bill())
    assert got[D1] and got[D2] and "no rows" in got[D1]
    assert got[D3] is None  # nothing stored: nothing to lose


def test_a_net_drop_beyond_the_threshold_without_retractions_is_refused():
    # D1 stored net 100; new 45 → a 55 % drop (> 50 %), gross 45 < 50 as well.
    got = verdicts(bill((D1, "ORIGINAL", 45.0), (D2, "ORIGINAL", 10.0)))
    assert "55%" in got[D1] and got[D2] is None
    # new 51 → a 49 % drop: accepted.
    assert verdicts(bill((D1, "ORIGINAL", 51.0), (D2, "ORIGINAL", 10.0)))[D1] is None


def test_a_drop_explained_by_retractions_is_accepted():
    # The originals are all still there (gross 100); a retraction of 70 without restatement: net 30.
    new = bill((D1, "ORIGINAL", 60.0), (D1, "ORIGINAL", 40.0), (D1, "RETRACTION", -70.0), (D2, "ORIGINAL", 10.0))
    assert verdicts(new)[D1] is None


def test_the_threshold_is_a_setting():
    new = bill((D1, "ORIGINAL", 75.0), (D2, "ORIGINAL", 10.0))  # a 25 % drop
    assert verdicts(new, threshold=0.5)[D1] is None
    assert verdicts(new, threshold=0.2)[D1] is not None
    with pytest.raises(ValueError, match="share"):
        verdicts(new, threshold=1.5)


def test_retained_sources_refuse_any_day_with_fewer_rows():
    stored = pl.DataFrame({"usage_date": [D1, D1, D1, D2], "x": [1, 2, 3, 4]})
    new = pl.DataFrame({"usage_date": [D1, D1, D2, D2], "x": [1, 2, 4, 5]})
    checks = guard.check_days("raw.job_runs", stored, new, [D1, D2], guard.RETAINED)
    assert [(c.day, c.stored_rows, c.new_rows, bool(c.reason)) for c in checks] == [(D1, 3, 2, True), (D2, 1, 2, False)]


def test_keep_stored_puts_back_exactly_the_refused_days():
    new = bill((D1, "ORIGINAL", 1.0), (D2, "ORIGINAL", 2.0), (D3, "ORIGINAL", 3.0))
    out = guard.keep_stored(new, STORED, [D1])
    # D1: the two stored rows (60 + 40); D2 and D3: the new rows.
    assert out.group_by("usage_date").agg(pl.col("usage_quantity").sum()).sort("usage_date").rows() == [
        (D1, 100.0),
        (D2, 2.0),
        (D3, 3.0),
    ]
    assert out.schema == new.schema


def test_keep_stored_gives_a_column_the_stored_rows_predate_null():
    # The answer has created_by (a column added to the contract); the stored D1 rows were written without it.
    new = bill((D1, "ORIGINAL", 1.0), (D2, "ORIGINAL", 2.0)).with_columns(created_by=pl.lit("ana"))
    out = guard.keep_stored(new, STORED, [D1])
    assert out.select("usage_date", "usage_quantity", "created_by").rows() == [
        (D1, 60.0, None),
        (D1, 40.0, None),
        (D2, 2.0, "ana"),
    ]
    assert out.schema == new.schema


def test_the_message_names_source_days_counts_and_the_override():
    checks = guard.check_days("raw.billing_usage", STORED, bill((D2, "ORIGINAL", 10.0)), [D1, D2], guard.BILL)
    text = guard.refusal_message("the bill (csv)", guard.refused(checks), [D2])
    assert "the bill (csv)" in text and "kept: 2026-01-01" in text
    assert "stored 2 rows, new 0" in text and "100.0000 DBUs stored" in text
    assert "written with the new rows: 2026-01-02" in text and guard.ACCEPT_TAG in text
