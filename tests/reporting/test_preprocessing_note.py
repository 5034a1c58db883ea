"""Table I's notes put a run trained on another CIFAR-10 preprocessing (the authors' other recipe)
beside the table's baseline and the paper's, from the files alone."""
import json
import shutil
from pathlib import Path

from branchynet.reporting import table1

ROOT = Path(__file__).resolve().parents[2]


def _measured_run(root, name, preprocessing, main_accuracy):
    """A measured run folder <root>/b-alexnet/<name>/measure/results.json whose run trained with
    ``preprocessing`` and whose main network scored ``main_accuracy``."""
    run = root / ("run-" + name)
    run.mkdir()
    info = json.loads((ROOT / "results/b-alexnet/run/run.json").read_text())
    info["preprocessing"] = preprocessing
    (run / "run.json").write_text(json.dumps(info))
    result = json.loads((ROOT / "results/b-alexnet/results.json").read_text())
    result["settings"]["run_dir"] = str(run)
    result["accuracy"]["main"] = main_accuracy
    measure = root / "b-alexnet" / name / "measure"
    measure.mkdir(parents=True)
    (measure / "results.json").write_text(json.dumps(result))


def test_a_run_on_another_preprocessing_is_noted_with_its_accuracy(tmp_path):
    (tmp_path / "b-alexnet").mkdir()
    shutil.copy(ROOT / "results/b-alexnet/results.json", tmp_path / "b-alexnet/results.json")
    _measured_run(tmp_path, "zca", "zca", 0.6123)
    _measured_run(tmp_path, "again", None, 0.7777)  # the table's own recipe: no note
    notes = [n for n in table1.assemble(str(tmp_path), ["b-alexnet"]).notes if "preprocessing" in n]
    assert len(notes) == 1
    assert notes[0].startswith("b-alexnet with the zca preprocessing")
    # 61.23 % against the committed gcn baseline (75.06 %) and the paper's 78.38 %
    assert "61.23 % on test, against 75.06 % with gcn" in notes[0] and "78.38 %" in notes[0]
