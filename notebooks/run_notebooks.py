#!/usr/bin/env python
"""Runs the notebooks' code cells and writes their outputs back into the .ipynb files (`make notebooks`).

    python notebooks/run_notebooks.py                    # every notebooks/*.ipynb, outputs written
    python notebooks/run_notebooks.py --check NB.ipynb   # run only; the file is left as it is

Jupyter is not a dependency. Each notebook runs in a fresh Python process started in notebooks/
(where Jupyter starts a kernel; ``--cwd`` picks another folder) with matplotlib's Agg backend: its
code cells are executed in order in one namespace, IPython magics (lines such as %matplotlib inline
or !pip ...) dropped. What a cell prints becomes a ``stream`` output; every figure open at
``plt.show()`` or at the end of the cell becomes a ``display_data`` output with an ``image/png``
(base64), as the inline backend shows it; cells get execution counts 1, 2, ... A cell that raises
stops the notebook, reports the traceback and leaves its file untouched. After each cell the worker
prints "--- code cell i of n done" (the tests look for it).

The committed notebooks carry the outputs this script wrote, so that a reader browsing the
repository sees the figures; rerun it after changing a notebook or what it reads.
"""
import argparse
import base64
import contextlib
import io
import json
import os
import re
import subprocess
import sys
import tempfile
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
MAGIC = re.compile(r"\s*(%{1,2}[A-Za-z_]\w*|![A-Za-z./~])")  # %time, %%capture, !pip; not "% (a, b)"
DPI = 72  # the inline backend's resolution; keeps the committed files small


def code_cells(notebook):
    return [c for c in notebook["cells"] if c["cell_type"] == "code"]


def _source(cell):
    source = cell["source"] if isinstance(cell["source"], str) else "".join(cell["source"])
    return "\n".join(line for line in source.splitlines() if not MAGIC.match(line)) + "\n"


def _lines(text):
    """Text as the list of lines (each keeping its newline) that .ipynb files store."""
    return text.splitlines(keepends=True)


class _Recorder:
    """Collects one cell's outputs in order: text streams, and figures when shown."""

    def __init__(self):
        self.outputs = []
        self.streams = {"stdout": io.StringIO(), "stderr": io.StringIO()}

    def flush_text(self):
        for name, buffer in self.streams.items():
            text = buffer.getvalue()
            if text:
                self.outputs.append({"output_type": "stream", "name": name, "text": _lines(text)})
                buffer.seek(0)
                buffer.truncate()

    def show_figures(self, *args, **kwargs):
        import matplotlib.pyplot as plt
        self.flush_text()
        for number in plt.get_fignums():
            fig = plt.figure(number)
            png = io.BytesIO()
            fig.savefig(png, format="png", dpi=DPI, bbox_inches="tight", metadata={"Software": None})
            width, height = fig.get_size_inches() * fig.dpi
            self.outputs.append({
                "output_type": "display_data", "metadata": {},
                "data": {"image/png": base64.b64encode(png.getvalue()).decode("ascii"),
                         "text/plain": ["<Figure size %dx%d with %d Axes>"
                                        % (round(width), round(height), len(fig.axes))]}})
        plt.close("all")


def execute(path, limit=None, progress=sys.stdout):
    """Runs the code cells of the notebook at ``path`` (the first ``limit``) in this process, in
    order, in one namespace, with ``plt.show()`` recording the open figures; returns each cell's
    list of outputs. Raises what a cell raises."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    recorders = []

    def show(*args, **kwargs):
        recorders[-1].show_figures()
    plt.show = show

    with open(path, encoding="utf-8") as f:
        cells = code_cells(json.load(f))[:limit]
    namespace = {"__name__": "__main__"}
    results = []
    for number, cell in enumerate(cells, 1):
        recorder = _Recorder()
        recorders.append(recorder)
        code = compile(_source(cell), "<%s, code cell %d>" % (path, number), "exec")
        with contextlib.redirect_stdout(recorder.streams["stdout"]), \
                contextlib.redirect_stderr(recorder.streams["stderr"]):
            try:
                exec(code, namespace)
                recorder.show_figures()  # what is still open at the end of the cell
            finally:
                recorder.flush_text()
        results.append(recorder.outputs)
        print("--- code cell %d of %d done" % (number, len(cells)), file=progress, flush=True)
    return results


def write_outputs(path, results):
    """Puts each code cell's outputs and execution count into the notebook at ``path``."""
    with open(path, encoding="utf-8") as f:
        notebook = json.load(f)
    cells = code_cells(notebook)
    if len(results) != len(cells):
        raise ValueError("%s: %d code cells, %d results" % (path, len(cells), len(results)))
    for count, (cell, outputs) in enumerate(zip(cells, results), 1):
        cell["outputs"] = outputs
        cell["execution_count"] = count
    text = json.dumps(notebook, indent=1, ensure_ascii=False) + "\n"
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


def run(path, cwd=HERE, limit=None, write=True, env=None, timeout=600):
    """Runs the notebook at ``path`` in a fresh process started in ``cwd``; writes its outputs
    into it if ``write``. Returns the worker's CompletedProcess (stdout: the progress lines)."""
    path = os.path.abspath(path)
    env = dict(os.environ if env is None else env, MPLBACKEND="Agg")
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "outputs.json")
        command = [sys.executable, os.path.abspath(__file__), "--worker", out, path]
        if limit is not None:
            command += ["--cells", str(limit)]
        proc = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True,
                              timeout=timeout)
        if proc.returncode == 0 and write:
            with open(out, encoding="utf-8") as f:
                write_outputs(path, json.load(f))
    return proc


def _worker(out, path, limit):
    try:
        results = execute(path, limit)
    except BaseException:
        traceback.print_exc()
        return 1
    with open(out, "w", encoding="utf-8") as f:
        json.dump(results, f)
    return 0


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("notebooks", nargs="*", help="the notebooks (default: every notebooks/*.ipynb)")
    p.add_argument("--check", action="store_true", help="run only; do not write the outputs")
    p.add_argument("--cells", type=int, default=None, help="run the first N code cells only (implies --check)")
    p.add_argument("--cwd", default=HERE, help="folder the notebook runs in (default notebooks/)")
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        return _worker(args.worker, args.notebooks[0], args.cells)
    paths = args.notebooks or sorted(os.path.join(HERE, n) for n in os.listdir(HERE) if n.endswith(".ipynb"))
    failed = 0
    for path in paths:
        proc = run(path, args.cwd, args.cells, write=not (args.check or args.cells))
        sys.stdout.write(proc.stdout)
        if proc.returncode != 0:
            failed += 1
            sys.stderr.write("%s failed:\n%s" % (path, proc.stderr))
        else:
            print("%s: ran%s" % (os.path.relpath(path), "" if args.check or args.cells else ", outputs written"))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
