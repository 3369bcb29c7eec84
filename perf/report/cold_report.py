#!/usr/bin/env python3
"""Tables of zeropool's cold-path benchmarks from Google Benchmark JSON files.

    python3 perf/report/cold_report.py build/perf/results/cold_start_bench.json

Reads the runs of perf/cold_start_bench (written by perf/cold_run.sh; several
files may be given) and prints Markdown: the machine, then for cold
first use and for the file read the median and the minimum time of the
repetitions, and ratios (medians against medians, same run set).
"""
import json
import statistics
import sys
from collections import defaultdict

MIB = 1 << 20
FAULTS = defaultdict(list)  # (family, name, size) -> page faults per sample


def load(paths):
    """Returns ({(family, name, bytes): [seconds...]}, context of the first file)."""
    samples = defaultdict(list)
    context = None
    for path in paths:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
        context = context or data.get("context", {})
        for b in data.get("benchmarks", []):
            if b.get("run_type") != "iteration" or b.get("error_occurred"):
                continue
            parts = b["run_name"].split("/")
            family, name, size = parts[0], parts[1], int(parts[2])
            scale = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0}[b.get("time_unit", "ns")]
            samples[(family, name, size)].append(b["real_time"] * scale)
            if "faults" in b:
                FAULTS[(family, name, size)].append(b["faults"])
    return samples, context


def machine():
    lines = []
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            model = next((l.split(":", 1)[1].strip() for l in f if l.startswith("model name")), "?")
        lines.append(f"CPU: {model}")
    except OSError:
        pass
    for label, path in (("THP enabled", "/sys/kernel/mm/transparent_hugepage/enabled"),
                        ("THP defrag", "/sys/kernel/mm/transparent_hugepage/defrag")):
        try:
            with open(path, encoding="utf-8") as f:
                lines.append(f"{label}: `{f.read().strip()}`")
        except OSError:
            lines.append(f"{label}: (none)")
    try:
        with open("/proc/sys/kernel/osrelease", encoding="utf-8") as f:
            lines.append(f"kernel: {f.read().strip()}")
    except OSError:
        pass
    return lines


def ms(seconds):
    return f"{seconds * 1e3:.1f}" if seconds >= 0.01 else f"{seconds * 1e3:.2f}"


def main(paths):
    samples, context = load(paths)
    if not samples:
        print("cold_report.py: no benchmark results in", " ".join(paths), file=sys.stderr)
        return 1
    med = {k: statistics.median(v) for k, v in samples.items()}
    print("## Cold path: measured")
    print()
    for line in machine():
        print(f"- {line}")
    n = max(len(v) for v in samples.values())
    print(f"- {context.get('num_cpus', '?')} CPUs; {n} repetitions per row; every sample a fresh process, repetitions of a row back to back")
    print()

    sizes = sorted({k[2] for k in med if k[0] == "cold"})
    names = sorted({k[1] for k in med if k[0] == "cold"},
                   key=lambda s: (not s.startswith("floor"), not s.startswith("new_delete"), s))
    baseline = "new_delete_glibc"
    print("### Cold first use: allocate, write one byte per 4 KiB page, free (ms)")
    print()
    print("median (min) per size; `x new/delete` is glibc new/delete's median over this row's median.")
    print()
    header = "| allocator |" + "".join(f" {s // MIB} MiB | x new/delete |" for s in sizes)
    print(header)
    print("|---|" + "---:|---:|" * len(sizes))
    for name in names:
        row = f"| {name} |"
        for s in sizes:
            key = ("cold", name, s)
            if key not in med:
                row += " - | - |"
                continue
            base = med.get(("cold", baseline, s))
            ratio = f"{base / med[key]:.1f}x" if base else "-"
            row += f" {ms(med[key])} ({ms(min(samples[key]))}) | {ratio} |"
        print(row)
    print()
    print("Page faults per sample (median), the part of the cost that does not depend on the machine:")
    print()
    print("| allocator |" + "".join(f" {s // MIB} MiB |" for s in sizes))
    print("|---|" + "---:|" * len(sizes))
    for name in names:
        cells = []
        for s in sizes:
            f = FAULTS.get(("cold", name, s))
            cells.append(f"{statistics.median(f):.0f}" if f else "-")
        print(f"| {name} | " + " | ".join(cells) + " |")
    print()

    reads = {k: v for k, v in med.items() if k[0] == "file_read"}
    if reads:
        size = next(iter(reads))[2]
        floor = med.get(("file_read", "reused_buffer_floor", size))
        print(f"### File read: {size // MIB} MiB from the page cache into a buffer (ms)")
        print()
        print("| buffer | median | min | x floor | page faults |")
        print("|---|---:|---:|---:|---:|")
        order = sorted(reads, key=lambda k: (k[1] != "reused_buffer_floor", k[1]))
        for key in order:
            ratio = f"{med[key] / floor:.2f}x" if floor else "-"
            f = FAULTS.get(key)
            faults = f"{statistics.median(f):.0f}" if f else "-"
            print(f"| {key[1]} | {ms(med[key])} | {ms(min(samples[key]))} | {ratio} | {faults} |")
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
