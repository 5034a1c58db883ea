#!/usr/bin/env python
"""Assembles Table I from the per-network results (experiments/lenet_mnist.py, alex_cifar10.py,
resnet_cifar10.py), ours beside the authors'.

    python experiments/table1.py [--results-root results] [--out results/table1.md]

reads <results-root>/<network>/results.json for each network and writes table1.md and
table1.json. GPU rows come from that file when it has them, else from
<results-root>/gpu/<network>/results.json (a run on the GPU machine, experiments/gpu_check.sh). A network (or a device) without results still gets the authors' rows, marked
"not run", with the command that would produce them.
"""
import argparse
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import branchynet  # noqa: E402,F401
import networks  # noqa: E402
from branchynet import paper, report, serialization  # noqa: E402

NETWORKS = ("b-lenet", "b-alexnet", "b-resnet110")
SCRIPTS = {"lenet": "experiments/lenet_mnist.py", "alexnet": "experiments/alex_cifar10.py",
           "resnet110": "experiments/resnet_cifar10.py"}
DEVICES = ("cpu", "gpu")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--results-root", default=os.path.join(ROOT, "results"))
    p.add_argument("--networks", nargs="+", default=list(NETWORKS),
                   help="network result folders to read, in order")
    p.add_argument("--out", default=None, help="Markdown output (default <results-root>/table1.md)")
    return p.parse_args(argv)


def _placeholder(network, device, why):
    family = networks.family_of(network)
    names = paper.DISPLAY_NAMES[family]
    return [{"device": device, "network": names[0], "row": why,
             "paper": report.paper_entry(family, device, False)},
            {"device": device, "network": names[1], "row": why,
             "thresholds": list(paper.paper_thresholds(family)),
             "paper": report.paper_entry(family, device, True)}]


def _read(path):
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def schedule_of(result):
    """{"trained": "M + J epochs, batch B" or None, "paper": the same for the paper's schedule,
    "matches": bool or None} for a network's results, from its run folder's run.json."""
    ref = paper.SCHEDULES[networks.family_of(result["network"])]
    text = "%d + %d epochs, batch %d"
    run = serialization.read_run_info(os.path.join(ROOT, result["settings"]["run_dir"]))
    out = {"paper": text % (ref["main_epochs"], ref["joint_epochs"], ref["batchsize"]),
           "trained": None, "matches": None}
    if run is not None:
        out["trained"] = text % (run["schedule"]["main_epochs"], run["schedule"]["joint_epochs"],
                                 run["batchsize"])
        out["matches"] = (not run["train_subset"] and out["trained"] == out["paper"])
        if run["train_subset"]:
            out["trained"] += ", %d training images" % run["train_subset"]
    return out


def _schedule_text(schedule):
    if schedule["trained"] is None:
        return "training schedule unknown (no run.json in the run folder)"
    if schedule["matches"]:
        return "trained with the paper's schedule (%s)" % schedule["paper"]
    return ("trained %s, NOT the paper's schedule (%s): its accuracies and exit shares are not "
            "comparable with the paper's" % (schedule["trained"], schedule["paper"]))


def assemble(results_root, network_names):
    """(table rows, per-network status, notes)."""
    found, found_gpu, notes = {}, {}, []
    for network in network_names:
        path = os.path.join(results_root, network, "results.json")
        gpu_result = _read(os.path.join(results_root, "gpu", network, "results.json"))
        if gpu_result is not None:
            found_gpu[network] = gpu_result
        if os.path.exists(path):
            found[network] = _read(path)
        else:
            command = "python %s" % SCRIPTS[networks.family_of(network)]
            if network not in NETWORKS:
                command += " --network %s" % network
            notes.append("%s: no results (%s not found); run `%s`." % (network, path, command))
    rows = []
    for device in DEVICES:
        for network in network_names:
            result = found.get(network)
            if result is None:
                rows += _placeholder(network, device, "not run")
                continue
            ours = [r for r in result["table"] if r["device"] == device]
            if not ours and device == "gpu" and network in found_gpu:
                ours = [r for r in found_gpu[network]["table"] if r["device"] == device]
            if ours:
                rows += ours
            else:
                rows += _placeholder(network, device, "no %s run" % device.upper())
                if device == "gpu":
                    notes.append("%s: no GPU results (rerun its script with --device @cupy:0)."
                                 % network)
    status = {n: {"found": n in found,
                  "path": os.path.join(results_root, n, "results.json"),
                  "environment": found[n]["environment"] if n in found else None,
                  "settings": found[n]["settings"] if n in found else None,
                  "accuracy": found[n]["accuracy"] if n in found else None,
                  "schedule": schedule_of(found[n]) if n in found else None,
                  "gpu_environment": found_gpu[n]["environment"] if n in found_gpu else None,
                  "gpu_settings": found_gpu[n]["settings"] if n in found_gpu else None}
              for n in network_names}
    return rows, status, notes


def main(argv=None):
    args = parse_args(argv)
    out = args.out or os.path.join(args.results_root, "table1.md")
    rows, status, notes = assemble(args.results_root, args.networks)
    lines = ["# Table I: ours beside the authors'", "", report.LEGEND]
    for network, s in status.items():
        if s["found"]:
            env, settings = s["environment"], s["settings"]
            lines.append("* %s: %s; %s, %d test samples, timing on %d samples x %d repeats; CPU %s%s."
                         % (network, _schedule_text(s["schedule"]), env["date"],
                            settings["test_samples"], settings["timing_samples"],
                            settings["repeats"], env["hardware"]["cpu"],
                            ", GPU %s" % env["hardware"]["gpu"] if env["hardware"]["gpu"] else ""))
        gpu_env = s["gpu_environment"]
        if gpu_env is not None and not (s["found"] and s["environment"]["hardware"]["gpu"]):
            lines.append("* %s, GPU rows: %s on the GPU machine (GPU %s, its CPU %s), timing on %d "
                         "samples x %d repeats, results/gpu/%s."
                         % (network, gpu_env["date"], gpu_env["hardware"]["gpu"],
                            gpu_env["hardware"]["cpu"], s["gpu_settings"]["timing_samples"],
                            s["gpu_settings"]["repeats"], network))
    lines += ["* " + note for note in notes]
    text = "\n".join(lines) + "\n\n" + report.markdown_table(rows)
    report.write_text(out, text)
    report.write_json(os.path.splitext(out)[0] + ".json",
                      {"rows": rows, "networks": status, "notes": notes})
    print(report.text_table(rows))
    for note in notes:
        print(note)
    print("written: %s, %s" % (out, os.path.splitext(out)[0] + ".json"))
    return rows


if __name__ == "__main__":
    main()
