"""Result files: indented JSON (numpy values converted, NaN/inf as null), a CSV of rows, text."""
import csv
import json
import math
import os

import numpy


def _plain(value):
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, numpy.ndarray):
        return _plain(value.tolist())
    if isinstance(value, numpy.integer):
        return int(value)
    if isinstance(value, numpy.floating):
        value = float(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None  # JSON has no NaN/inf
    return value


def write_json(path, obj):
    """Writes ``obj`` as indented JSON (numpy values converted, NaN/inf as null)."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(_plain(obj), f, indent=1)
        f.write("\n")
    os.replace(tmp, path)


def _flatten(row):
    flat = {}
    for key, value in row.items():
        if isinstance(value, dict):
            for sub, v in _flatten(value).items():
                flat["%s_%s" % (key, sub)] = v
        elif isinstance(value, (list, tuple)):
            for i, v in enumerate(value, 1):
                flat["%s_%d" % (key, i)] = v
        else:
            flat[key] = value
    return flat


def write_csv(path, rows):
    """One line per row; list values become numbered columns (``exit_fractions_1`` ...)."""
    flat = [_flatten(_plain(row)) for row in rows]
    columns = []
    for row in flat:
        columns += [c for c in row if c not in columns]
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns, restval="")
        writer.writeheader()
        writer.writerows(flat)


def write_text(path, text):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)

