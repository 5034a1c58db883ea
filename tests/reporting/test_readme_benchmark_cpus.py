"""The README names the speed benchmarks that ran on another CPU than Table I's CPU rows."""
import json
from types import SimpleNamespace

from branchynet.reporting import readme


def _table(*cpus):
    networks = {"n%d" % i: SimpleNamespace(found=True, environment=SimpleNamespace(
        hardware=SimpleNamespace(cpu=cpu))) for i, cpu in enumerate(cpus)}
    networks["missing"] = SimpleNamespace(found=False, environment=None)
    return SimpleNamespace(networks=networks)


def _bench(root, name, cpu):
    (root / "benchmarks").mkdir(exist_ok=True)
    (root / "benchmarks" / (name + ".json")).write_text(json.dumps(
        {"environment": {"hardware": {"cpu": cpu}}}))


def test_benchmarks_on_the_rows_cpu_need_no_note(tmp_path):
    _bench(tmp_path, "a", "AMD EPYC")
    assert readme._benchmark_cpus_text(str(tmp_path), _table("AMD EPYC")) == ""


def test_benchmarks_on_another_cpu_are_named(tmp_path):
    _bench(tmp_path, "gain_batch_cpu", "Intel Xeon")
    _bench(tmp_path, "peer_cpu", "Intel Xeon")
    _bench(tmp_path, "old", "AMD EPYC")
    text = readme._benchmark_cpus_text(str(tmp_path), _table("AMD EPYC"))
    assert "Intel Xeon (gain_batch_cpu, peer_cpu)" in text
    assert "old" not in text and "AMD" not in text
