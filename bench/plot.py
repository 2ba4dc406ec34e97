#!/usr/bin/env python3
"""Plots wall time per batch against batch size from `make bench`'s results.json.

  plot.py RESULTS_JSON OUT_PNG

One panel per round-trip time. Lines join the workloads of 2-row groups (1, 100 and 1,000 records);
the group chat and the replay (100 records each) are separate markers. Bars span min to max.
"""

import json
import statistics
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

RUNNERS = [
    ("rust", "Rust", "tab:blue", "-"),
    ("seed_all", "seed, all records", "tab:red", "--"),
    ("seed_first", "seed, Records[0] only", "tab:gray", ":"),
]
LINE = ["single", "groups20", "groups500"]
MARKERS = {"groupchat": ("s", "group chat of 200 rows"), "replay": ("^", "replay")}


def main():
    results_path, out_path = sys.argv[1], sys.argv[2]
    with open(results_path, encoding="utf-8") as f:
        results = json.load(f)
    workloads = {w["name"]: w for w in results["workloads"]}
    cells = {(c["workload"], c["latency_ms"], c["runner"]): c for c in results["cells"]}
    latencies = results["latencies_ms"]
    if not results["cells"]:
        # A cost-only run (`--only cost`) times nothing: the plot of the last timed run stays.
        print(f"plot: no timed cells in {results_path}; {out_path} left as it is")
        return
    fig, axes = plt.subplots(1, len(latencies), figsize=(5 * len(latencies), 4.6), sharey=True, squeeze=False)
    for ax, latency in zip(axes[0], latencies):
        for runner, label, color, style in RUNNERS:
            xs, ys, lo, hi = [], [], [], []
            for name in LINE:
                cell = cells.get((name, latency, runner))
                if name not in workloads or not cell or not cell["runs_s"]:
                    continue
                runs = [r * 1000 for r in cell["runs_s"]]
                median = statistics.median(runs)
                xs.append(workloads[name]["records"])
                ys.append(median)
                lo.append(median - min(runs))
                hi.append(max(runs) - median)
            if xs:
                ax.errorbar(xs, ys, yerr=[lo, hi], color=color, linestyle=style, marker="o", capsize=3, label=label)
            for name, (marker, what) in MARKERS.items():
                cell = cells.get((name, latency, runner))
                if name not in workloads or not cell or not cell["runs_s"]:
                    continue
                median = statistics.median(cell["runs_s"]) * 1000
                ax.scatter([workloads[name]["records"]], [median], color=color, marker=marker, facecolors="none", s=60)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_title(f"{latency} ms added per request")
        ax.set_xlabel("records in the batch")
        ax.grid(True, which="both", alpha=0.3)
    axes[0][0].set_ylabel("wall time per batch, ms (median; bars: min-max)")
    handles, labels = axes[0][0].get_legend_handles_labels()
    for marker, what in MARKERS.values():
        handles.append(plt.Line2D([], [], color="black", marker=marker, linestyle="none", markerfacecolor="none"))
        labels.append(f"{what} (100 records)")
    fig.legend(handles, labels, loc="lower center", ncol=len(labels), fontsize="small")
    fig.suptitle(f"messaging-stream vs the seed on DynamoDB Local ({results['date']})")
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    fig.savefig(out_path, dpi=110)
    print(f"plot: {out_path}")


if __name__ == "__main__":
    main()
