"""Result files: JSON without numpy types or NaN, a CSV with list values as numbered columns."""
import csv
import json

import numpy

from branchynet.reporting import files


def test_json_converts_numpy_values_and_writes_nan_as_null(tmp_path):
    path = tmp_path / "sub" / "r.json"
    files.write_json(str(path), {"a": numpy.float32(0.5), "b": numpy.arange(3), "c": float("nan"),
                                 "d": (numpy.int64(2), float("inf"))})
    assert json.loads(path.read_text()) == {"a": 0.5, "b": [0, 1, 2], "c": None, "d": [2, None]}


def test_csv_flattens_lists_and_dicts_into_columns(tmp_path):
    path = tmp_path / "rows.csv"
    files.write_csv(str(path), [{"t": [0.1, 0.2], "acc": 0.9, "cpu": {"ms": 1.5}},
                                {"t": [0.3, 0.4], "acc": 0.8, "extra": 1}])
    with open(path) as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["t_1", "t_2", "acc", "cpu_ms", "extra"]
    assert rows[0]["t_2"] == "0.2" and rows[0]["cpu_ms"] == "1.5" and rows[0]["extra"] == ""
    assert rows[1]["extra"] == "1" and rows[1]["cpu_ms"] == ""
