#!/usr/bin/env python3
"""Tables and chart of zeropool's benchmarks, from Google Benchmark JSON.

    python3 perf/report/report.py --results build/perf/results \
        --markdown docs/benchmarks.md --svg docs/benchmarks.svg

Reads build/perf/results/bench_*.json (written by perf/run_benchmarks.sh),
machine.txt, file_read_demo.txt and footprint_model.md (a section whose rows or
files are missing is left out); writes the Markdown tables into the
Markdown file between the marker comments below (the rest of the file is left
as it is) and a bar chart as SVG. Every figure is the median of the
repetitions. Standard library only (no matplotlib): the SVG is written by hand.
"""

import argparse
import glob
import json
import math
import os
import re
import sys

BEGIN = "<!-- BEGIN GENERATED TABLES (perf/report/report.py) -->"
END = "<!-- END GENERATED TABLES -->"

SIZES = [4096, 65536, 1 << 20, 16 << 20, 256 << 20]

# Display names of the resources, in table order.
NAMES = [
    ("zeropool", "zeropool"),
    ("zeropool_exact", "zeropool, exact classes (fit off)"),
    ("ideal_free_list", "ideal free list (floor)"),
    ("new_delete", "glibc malloc (new_delete_resource)"),
    ("tcmalloc", "tcmalloc"),
    ("jemalloc", "jemalloc"),
    ("mimalloc", "mimalloc"),
    ("tbb_scalable", "TBB scalable_malloc"),
    ("std_sync_pool", "std sync pool, default options"),
    ("std_sync_pool_large", "std sync pool, large blocks"),
    ("std_unsync_pool", "std unsync pool, default options"),
    ("std_unsync_pool_large", "std unsync pool, large blocks"),
    ("boost_sync_pool_large", "Boost sync pool (1.81: <= 4 KiB)"),
]
ORDER = {k: i for i, (k, _) in enumerate(NAMES)}
DISPLAY = dict(NAMES)
PEERS_EXCLUDED = {"zeropool", "zeropool_exact", "ideal_free_list"}
# zeropool's own rows of the mixed-sizes workload, each of which reports the
# model of its policy beside the measurement.
ZEROPOOL_MIXED_ROWS = ["zeropool", "zeropool_exact"]

UNIT_NS = {"ns": 1.0, "us": 1e3, "ms": 1e6, "s": 1e9}


def size_label(b):
    b = int(b)
    if b >= 1 << 20:
        return "%d MiB" % (b >> 20)
    if b >= 1 << 10:
        return "%d KiB" % (b >> 10)
    return "%d B" % b


def fmt_ns(ns):
    if ns is None:
        return "-"
    if ns >= 1e6:
        return "%.2f ms" % (ns / 1e6)
    if ns >= 1e4:
        return "%.1f us" % (ns / 1e3)
    if ns >= 100:
        return "%.0f ns" % ns
    return "%.1f ns" % ns


def fmt_ratio(r):
    return "-" if r is None else "%.2fx" % r


def median(values):
    v = sorted(values)
    n = len(v)
    if n == 0:
        return None
    return v[n // 2] if n % 2 else 0.5 * (v[n // 2 - 1] + v[n // 2])


class Results:
    """run_name -> {"cpu": ns, "real": ns, counters...}, medians of repetitions."""

    def __init__(self, directory):
        self.rows = {}
        runs = {}
        for path in sorted(glob.glob(os.path.join(directory, "bench_*.json"))):
            with open(path) as f:
                data = json.load(f)
            for b in data.get("benchmarks", []):
                if b.get("run_type") != "iteration" or b.get("error_occurred"):
                    continue
                name = b.get("run_name", b["name"])
                unit = UNIT_NS[b.get("time_unit", "ns")]
                rec = {"cpu": b["cpu_time"] * unit, "real": b["real_time"] * unit}
                for k, v in b.items():
                    if k not in rec and isinstance(v, (int, float)) and not isinstance(v, bool):
                        rec[k] = float(v)
                runs.setdefault(name, []).append(rec)
        for name, recs in runs.items():
            keys = set().union(*(r.keys() for r in recs))
            self.rows[name] = {k: median([r[k] for r in recs if k in r]) for k in keys}
            self.rows[name]["repetitions"] = len(recs)

    def get(self, name, key="cpu"):
        r = self.rows.get(name)
        return None if r is None else r.get(key)

    def resources(self, family):
        found = set()
        for name in self.rows:
            parts = name.split("/")
            if parts[0] == family and len(parts) > 1:
                found.add(parts[1])
        return sorted(found, key=lambda k: (ORDER.get(k, 99), k))


def table(header, rows):
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(out)


def faster_peers(res, resources, sizes, name_format, key="cpu"):
    """(peer, size, peer's value, zeropool's value) for every peer that beats
    zeropool at a size, in the rows named name_format % (resource, size)."""
    out = []
    for s in sizes:
        z = res.get(name_format % ("zeropool", s), key)
        if z is None:
            continue
        for r in resources:
            if r in PEERS_EXCLUDED:
                continue
            t = res.get(name_format % (r, s), key)
            if t is not None and t < z:
                out.append((r, s, t, z))
    return out


def round_trip_section(res, family, title, targets):
    resources = res.resources(family)
    if not resources:
        return ""
    lines = ["### " + title, ""]
    header = ["resource"] + [size_label(s) for s in SIZES]
    rows = []
    for r in resources:
        cells = [DISPLAY.get(r, r)]
        for s in SIZES:
            t = res.get("%s/%s/%d" % (family, r, s))
            ideal = res.get("%s/ideal_free_list/%d" % (family, s))
            cell = fmt_ns(t)
            if t is not None and ideal:
                cell += " (%.1fx)" % (t / ideal)
            cells.append(cell)
        rows.append(cells)
    lines.append(table(header, rows))
    lines.append("")
    lines.append("CPU time per allocate + deallocate, median of repetitions; in brackets, "
                 "the ratio to the ideal free list of the same size.")
    lines.append("")
    if family == "round_trip":
        # Target: zeropool <= 1.5x ideal, faster than every peer, at every size.
        worst_ideal = None
        for s in SIZES:
            z = res.get("round_trip/zeropool/%d" % s)
            ideal = res.get("round_trip/ideal_free_list/%d" % s)
            if z is not None and ideal:
                worst_ideal = max(worst_ideal or 0, z / ideal)
        slower_than = ["%s at %s (%s vs %s)" % (DISPLAY.get(r, r), size_label(s), fmt_ns(t), fmt_ns(z))
                       for r, s, t, z in faster_peers(res, resources, SIZES, "round_trip/%s/%d")]
        targets.append(("1. cache-hit round trip / ideal free list",
                        "worst size: %s" % fmt_ratio(worst_ideal),
                        worst_ideal is not None and worst_ideal <= 1.5))
        targets.append(("1. peers faster than zeropool's cache hit",
                        "slower than: " + ("; ".join(slower_than) if slower_than else "none"),
                        not slower_than))
    return "\n".join(lines)


def buffer_api_section(res, targets):
    if not res.resources("get_put"):
        return ""
    rows = []
    worst = None
    for s in SIZES:
        raw = res.get("raw/zeropool/%d" % s)
        gp = res.get("get_put/zeropool/%d" % s)
        buf = res.get("buffer/zeropool/%d" % s)
        ratio = gp / raw if raw and gp else None
        if ratio is not None:
            worst = max(worst or 0, ratio)
        rows.append([size_label(s), fmt_ns(raw), fmt_ns(gp), fmt_ratio(ratio), fmt_ns(buf),
                     fmt_ratio(buf / raw if raw and buf else None)])
    targets.append(("3. get/put / raw allocate + deallocate",
                    "worst size: %s" % fmt_ratio(worst), worst is not None and worst <= 1.2))
    return "\n".join([
        "### 3. get + put through the buffer API (zeropool)", "",
        table(["size", "raw allocate + deallocate", "get + put", "get/put vs raw",
               "zeropool::buffer(n) + destroy", "buffer vs raw"], rows), "",
        "CPU time per round trip, median of repetitions.", ""])


def threads_section(res, targets):
    resources = res.resources("threads")
    if not resources:
        return ""
    tsizes = [s for s in SIZES if s <= 16 << 20]
    rows = []
    best_zeropool = None
    for r in resources:
        cells = [DISPLAY.get(r, r)]
        for s in tsizes:
            one = res.get("threads/%s/%d/real_time/threads:1" % (r, s), "items_per_second")
            two = res.get("threads/%s/%d/real_time/threads:2" % (r, s), "items_per_second")
            if one and two:
                scale = two / one
                name2 = "threads/%s/%d/real_time/threads:2" % (r, s)
                cpu, real = res.get(name2, "cpu"), res.get(name2, "real")
                cores = ", %.1f cores" % (cpu / real) if cpu and real else ""
                cells.append("%.0f -> %.0f M/s (%.2fx%s)" % (one / 1e6, two / 1e6, scale, cores))
                if r == "zeropool":
                    best_zeropool = max(best_zeropool or 0, scale)
            elif one:
                cells.append("%.0f M/s (1 thread)" % (one / 1e6))
            else:
                cells.append("-")
        rows.append(cells)
    worst_zeropool = None
    for s in tsizes:
        one = res.get("threads/zeropool/%d/real_time/threads:1" % s, "items_per_second")
        two = res.get("threads/zeropool/%d/real_time/threads:2" % s, "items_per_second")
        if one and two:
            worst_zeropool = min(worst_zeropool or 1e9, two / one)
    targets.append(("4. two threads' throughput / one thread's",
                    "zeropool: worst size %s, best %s" % (fmt_ratio(worst_zeropool),
                                                          fmt_ratio(best_zeropool)),
                    worst_zeropool is not None and worst_zeropool >= 1.8))
    return "\n".join([
        "### 4. Two threads on one resource", "",
        table(["resource"] + [size_label(s) for s in tsizes], rows), "",
        "Aggregate round trips per second (wall clock), one thread -> two threads, and the "
        "scaling in brackets (2.0 is perfect), then the cores the two-thread row actually got "
        "(CPU time summed over the threads / wall-clock time: below 2.0, something else held a "
        "core, and the scaling cannot reach 2). On a 2-core machine shared with other work, "
        "the second thread competes with it: see the load average above.", ""])


def producer_consumer_section(res, targets):
    resources = res.resources("producer_consumer")
    if not resources:
        return ""
    tsizes = [s for s in SIZES if s <= 16 << 20]
    rows = []
    for r in resources:
        cells = [DISPLAY.get(r, r)]
        for s in tsizes:
            name = "producer_consumer/%s/%d/real_time" % (r, s)
            per_op = res.get(name, "per_op")
            ups = res.get(name, "upstream_allocs")
            cell = fmt_ns(per_op * 1e9 if per_op is not None else None)
            if ups is not None:
                cell += " (%d upstream)" % ups
            cells.append(cell)
        rows.append(cells)
    lost = ["%s at %s" % (DISPLAY.get(r, r), size_label(s))
            for r, s, _, _ in faster_peers(res, resources, tsizes,
                                           "producer_consumer/%s/%d/real_time", "per_op")]
    targets.append(("5. peers faster than zeropool at producer/consumer",
                    "slower than: " + ("; ".join(lost) if lost else "none"), not lost))
    return "\n".join([
        "### 5. Producer/consumer (one thread allocates, another frees)", "",
        table(["resource"] + [size_label(s) for s in tsizes], rows), "",
        "Wall-clock time per block handed over, median of repetitions. In brackets, for the "
        "resources that report it, the upstream allocations since the resource was built "
        "(warm-up included): bounded by the pool's capacity, it does not grow with the "
        "number of operations.", ""])


def mixed_times(res, family):
    """The resources of a mixed-sizes family (mixed_sizes, mixed_sizes_untouched),
    their CPU per step at 64 live blocks, and the best peer's."""
    resources = res.resources(family)
    times = {r: res.get("%s/%s/64" % (family, r)) for r in resources}
    peers = [t for r, t in times.items() if r not in PEERS_EXCLUDED and t is not None]
    return resources, times, (min(peers) if peers else None)


def mixed_section(res, targets):
    resources, times, best = mixed_times(res, "mixed_sizes")
    if not resources:
        return ""
    rows = []
    for r in resources:
        name = "mixed_sizes/%s/64" % r
        t = times[r]

        def c(key, f="%.2f"):
            v = res.get(name, key)
            return "-" if v is None else f % v
        rows.append([DISPLAY.get(r, r), fmt_ns(t), fmt_ratio(t / best if t and best else None),
                     c("faults_per_op", "%.3f"), c("upstream_allocs_per_op", "%.4f"),
                     c("fitted_per_op", "%.3f"), c("upstream_peak_per_live"),
                     c("class_floor_per_live"), c("rss_peak_per_live")])
    z = times.get("zeropool")
    z_ratio = z / best if z and best else None
    targets.append(("6. mixed sizes: time / the best peer's",
                    "zeropool %s, best peer %s: %s" % (fmt_ns(z), fmt_ns(best), fmt_ratio(z_ratio)),
                    z_ratio is not None and z_ratio <= 1.2))
    rss = res.get("mixed_sizes/zeropool/64", "rss_peak_per_live")
    floor = res.get("mixed_sizes/zeropool/64", "class_floor_per_live")
    targets.append(("8. mixed sizes: peak RSS / live bytes",
                    "zeropool %s%s" % ("-" if rss is None else "%.2fx" % rss,
                                       "" if floor is None else
                                       " (floor of any exact-class cache: %.2fx upstream)" % floor),
                    rss is not None and rss <= 1.3))
    measured = res.get("mixed_sizes/zeropool/64", "upstream_peak_per_live")
    modelled = res.get("mixed_sizes/zeropool/64", "model_peak_per_live")
    if measured is not None:
        targets.append(("8. mixed sizes: upstream peak / live bytes",
                        "zeropool %.2fx measured%s" % (measured, "" if modelled is None else
                                                       ", %.2fx modelled" % modelled),
                        measured <= 1.8))
    out = ["### 6 and 8. Mixed sizes 1 KiB..1 MiB, 64 blocks live: time and memory", "",
           table(["resource", "CPU per step", "vs best peer", "page faults per step",
                  "upstream allocs per step", "fitted per step", "upstream peak / live",
                  "class-cache floor / live", "peak RSS / live"], rows),
           "",
           "Each row ran in a process of its own. A step frees the oldest of 64 live blocks and "
           "allocates a new one (log-uniform size, fixed seed), writing one byte per page. "
           "zeropool runs its default configuration (fit on: a request whose class has no idle "
           "block takes the smallest idle block of up to 4 classes above); zeropool, exact "
           "classes is the same pool with fit off. Fitted per step (zeropool only): the "
           "allocations served by a block of a larger class. "
           "Peak RSS / live: (VmHWM - RSS before the row) over the most bytes live at once; "
           "upstream peak / live: the most bytes held from the upstream resource over the same "
           "(zeropool and the std pool only). Class-cache floor / live (zeropool only) is "
           "computed from the size list, not measured: the upstream bytes that any pool keeping "
           "freed blocks by zeropool's size classes, each serving its own class only, must hold "
           "after the same steps (per class, the most blocks ever live at once), over the same "
           "live bytes.", ""]
    out += untouched_mixed(res, targets)
    out += model_vs_measurement(res)
    budget = sorted((n for n in res.rows if n.startswith("mixed_sizes_budget/zeropool/")),
                    key=lambda n: int(re.search(r"max_cached_mib:(\d+)", n).group(1)))
    if budget:
        brows = []
        for n in budget:
            mib = re.search(r"max_cached_mib:(\d+)", n).group(1)
            brows.append(["%s MiB" % mib, fmt_ns(res.get(n)),
                          fmt_ratio(res.get(n) / best if best and res.get(n) else None),
                          "%.3f" % (res.get(n, "faults_per_op") or 0),
                          "%.4f" % (res.get(n, "upstream_allocs_per_op") or 0),
                          "%.2f" % (res.get(n, "upstream_peak_per_live") or 0),
                          "%.2f" % (res.get(n, "class_floor_per_live") or 0),
                          "%.2f" % (res.get(n, "rss_peak_per_live") or 0)])
        out += ["Trading idle memory for hits: zeropool with `max_cached_bytes` capped.", "",
                table(["max_cached_bytes", "CPU per step", "vs best peer", "page faults per step",
                       "upstream allocs per step", "upstream peak / live", "class-cache floor / live",
                       "peak RSS / live"],
                      brows), ""]
    return "\n".join(out)


def untouched_mixed(res, targets):
    """The mixed-sizes rows without page writes: the allocators' own cost."""
    resources, times, best = mixed_times(res, "mixed_sizes_untouched")
    if not resources:
        return []
    rows = []
    for r in resources:
        name = "mixed_sizes_untouched/%s/64" % r
        t = times[r]

        def c(key, f):
            v = res.get(name, key)
            return "-" if v is None else f % v
        rows.append([DISPLAY.get(r, r), fmt_ns(t), fmt_ratio(t / best if t and best else None),
                     c("faults_per_op", "%.3f"), c("upstream_allocs_per_op", "%.4f"),
                     c("fitted_per_op", "%.3f")])
    z = times.get("zeropool")
    if z and best:
        targets.append(("6. mixed sizes, pages untouched: time / the best peer's",
                        "zeropool %s, best peer %s: %s" % (fmt_ns(z), fmt_ns(best), fmt_ratio(z / best)),
                        True))
    return ["The same steps without the page writes (`mixed_sizes_untouched`): what each allocator "
            "costs by itself. A fresh block then costs its allocation but not its page faults, so "
            "the difference between the two tables is mostly the faults of fresh memory.", "",
            table(["resource", "CPU per step", "vs best peer", "page faults per step",
                   "upstream allocs per step", "fitted per step"], rows), ""]


def model_vs_measurement(res):
    """The zeropool rows' measured counters beside the model of their policy
    (the same steps replayed through perf/common/mixed_sizes.hpp); empty when
    no row reports the model."""
    rows = []
    for r in ZEROPOOL_MIXED_ROWS:
        name = "mixed_sizes/%s/64" % r
        model_peak = res.get(name, "model_peak_per_live")
        if model_peak is None:
            continue

        def v(key, f):
            x = res.get(name, key)
            return "-" if x is None else f % x
        peak = res.get(name, "upstream_peak_per_live")
        rows.append([DISPLAY.get(r, r), v("upstream_peak_per_live", "%.3f"),
                     v("model_peak_per_live", "%.3f"),
                     fmt_ratio(peak / model_peak if peak is not None and model_peak else None),
                     v("upstream_allocs_per_op", "%.5f"), v("model_allocs_per_op", "%.5f"),
                     v("fitted_per_op", "%.4f"), v("model_fitted_per_op", "%.4f")])
    if not rows:
        return []
    return ["Model versus measurement: each zeropool row also replays its own steps through "
            "the model of its policy (`zeropool_pool_model` in perf/common/mixed_sizes.hpp, the "
            "\"as built\" rows of the footprint model below) and reports the model's figures "
            "beside the measured ones (medians of the repetitions).", "",
            table(["row", "upstream peak / live, measured", "model", "measured / model",
                   "upstream allocs per step, measured", "model", "fitted per step, measured",
                   "model"], rows), ""]


def file_read_section(results_dir, targets):
    path = os.path.join(results_dir, "file_read_demo.txt")
    if not os.path.exists(path):
        return ""
    rows = []
    head = []
    with open(path) as f:
        for line in f:
            m = re.match(r"^(.+?)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)x\s*$", line.rstrip("\n"))
            if m and not line.startswith("target"):
                rows.append([m.group(1).strip(), m.group(2), m.group(3), m.group(4) + "x"])
            elif line.startswith("zeropool file_read_demo") or line.startswith("transparent"):
                head.append(line.strip())
    zp = [r for r in rows if r[0].lower().startswith("zeropool")]
    z_ratio = float(zp[0][3][:-1]) if zp else None
    targets.append(("7. file read / the reused-buffer floor",
                    "zeropool %s" % fmt_ratio(z_ratio), z_ratio is not None and z_ratio <= 1.05))
    return "\n".join(["### 7. File read (the demo): " + (head[0] if head else ""), "",
                      table(["target", "median ms", "min ms", "x floor"], rows), ""])


# ---- variable-size I/O (perf/bench/variable_io_bench.cpp) --------------------

# (family of the read rows, family of the no-touch rows, label, short label)
VARIABLE_IO_SETS = [("variable_io", "variable_io_no_touch", "GPT-2 124M tensors", "GPT-2"),
                    ("variable_io_mixed", "variable_io_mixed_no_touch", "mixed record stream", "mixed")]
# The window every set has; the table puts it first, then the others ascending.
VARIABLE_IO_DEFAULT_WINDOW = 4
VARIABLE_IO_ROW = re.compile(r"^(variable_io[a-z_]*)/([^/]+)/window:(\d+)(?:/real_time)?$")


def variable_io_rows(res):
    """(family, resource, K) -> the row's name, for every variable_io row."""
    out = {}
    for name in res.rows:
        m = VARIABLE_IO_ROW.match(name)
        if m:
            out[(m.group(1), m.group(2), int(m.group(3)))] = name
    return out


def variable_io_windows(index, family):
    ks = {k for (f, _, k) in index if f == family}
    return sorted(ks, key=lambda k: (k != VARIABLE_IO_DEFAULT_WINDOW, k))


def variable_io_resources(index, family):
    found = {r for (f, r, _) in index if f == family}
    return sorted(found, key=lambda k: (ORDER.get(k, 99), k))


def variable_io_best_peer(res, index, family, k):
    """The best peer's wall-clock time per pass at window k (None if no peer)."""
    times = [res.get(n, "real") for (f, r, kk), n in index.items()
             if f == family and kk == k and r not in PEERS_EXCLUDED]
    times = [t for t in times if t is not None]
    return min(times) if times else None


def fmt_count(v):
    if v is None:
        return "-"
    if v == 0:
        return "0"
    return "%.2f" % v if v < 10 else "%.0f" % v


def fmt_mib(v):
    if v is None:
        return "-"
    if v == 0:
        return "0"
    return "%.1f" % (v / (1 << 20))


def variable_io_section(res, targets):
    index = variable_io_rows(res)
    if not index:
        return ""
    out = ["### Variable-size I/O: records read from a file into buffers of their size", ""]
    summary = []
    for family, _, label, short in VARIABLE_IO_SETS:
        ks = variable_io_windows(index, family)
        if not ks:
            continue
        best = {k: variable_io_best_peer(res, index, family, k) for k in ks}
        per_k = ", " + " / ".join("K=%d" % k for k in ks) if len(ks) > 1 else ""

        def cell(r, key, f):
            """One figure per window, in the order of ks; '-' if no window has it."""
            vals = [res.get(index.get((family, r, k)), key) if (family, r, k) in index else None
                    for k in ks]
            if all(v is None for v in vals):
                return "-"
            return " / ".join(f(v) for v in vals)

        rows = []
        for r in variable_io_resources(index, family):
            cells = [DISPLAY.get(r, r)]
            for k in ks:
                name = index.get((family, r, k))
                t = res.get(name, "real") if name else None
                c = fmt_ns(t)
                if t is not None and best[k]:
                    c += " (%.2fx)" % (t / best[k])
                cells.append(c)
            cells.append(cell(r, "faults_per_pass", fmt_count))
            cells.append(cell(r, "upstream_per_pass", fmt_mib))
            cells.append(cell(r, "upstream_held", fmt_mib))
            cells.append(cell(r, "rss_peak", fmt_mib))
            cells.append(cell(r, "cold_pass_ms", lambda v: fmt_ns(None if v is None else v * 1e6)))
            fitted = []
            for k in ks:
                name = index.get((family, r, k))
                f_pass = res.get(name, "fitted_per_pass") if name else None
                f_cold = res.get(name, "fitted_cold_pass") if name else None
                if f_pass is None:
                    fitted.append("-")
                else:
                    fitted.append("%.1f" % f_pass + ("" if f_cold is None else " (%.0f)" % f_cold))
            cells.append("-" if all(x == "-" for x in fitted) else " / ".join(fitted))
            rows.append(cells)
            if r == "zeropool":
                for k in ks:
                    name = index.get((family, r, k))
                    t = res.get(name, "real") if name else None
                    if t is not None and best[k]:
                        summary.append(("%s K=%d" % (short, k), t / best[k]))
        # Bytes read per pass and most bytes live at once, from any row that
        # reports them (the same in every row of a window: properties of the set).
        # The bytes per pass are bytes_per_second times the time per pass
        # (exact with an odd number of repetitions; the median over the rows).
        live, reads = [], []
        for k in ks:
            names = [index[(f, r, kk)] for (f, r, kk) in index if f == family and kk == k]
            lp = next((res.get(n, "live_peak") for n in names if res.get(n, "live_peak") is not None), None)
            if lp is not None:
                live.append("%s MiB at K=%d" % (fmt_mib(lp), k))
            for n in names:
                bps, real = res.get(n, "bytes_per_second"), res.get(n, "real")
                if bps and real:
                    reads.append(bps * real * 1e-9)
        read = median(reads)
        header = (["resource"] + ["pass, K=%d" % k for k in ks] +
                  ["faults / pass" + per_k, "upstream MiB / pass" + per_k, "upstream held MiB" + per_k,
                   "peak RSS MiB" + per_k, "cold pass" + per_k, "fitted / pass (cold pass)" + per_k])
        out += ["%s%s%s." % (label[0].upper() + label[1:],
                             "" if read is None else ", %.0f MiB read per pass" % (read / (1 << 20)),
                             "" if not live else "; most bytes live at once: " + ", ".join(live)), "",
                table(header, rows), ""]
    if len(out) > 2:
        out += ["Each row ran in a process of its own. One pass takes a buffer of each record's size "
                "from the resource, in order, and reads the record into it from a file already in "
                "the page cache (pread(2)); K buffers are live at once, the oldest released before "
                "the next is taken (see perf/bench/variable_io_bench.cpp). Pass: wall-clock time per "
                "pass, median of repetitions, and in brackets the ratio to the best peer's at the same "
                "K (peers: every row but zeropool's own). The other columns give one figure per K, in "
                "the order of the pass columns: minor page faults per pass; MiB asked of the upstream "
                "resource per pass and held from it after the timed passes, K buffers still live "
                "(zeropool and the std pool only: malloc and TBB are their own upstream); peak RSS: "
                "VmHWM over the RSS before the row's resource was built, the untimed first pass "
                "included; cold pass: that first pass, on the fresh resource; fitted (zeropool rows): "
                "requests served by a block of a larger class per timed pass, and in the cold pass "
                "in brackets.", ""]
    # The allocator's cost alone: the same requests, no read and no write
    # (shown even when the run has no read rows).
    nt_cols = [(nt, short, k) for _, nt, _, short in VARIABLE_IO_SETS for k in variable_io_windows(index, nt)]
    if nt_cols:
        nt_best = {(nt, k): variable_io_best_peer(res, index, nt, k) for nt, _, k in nt_cols}
        nt_resources = sorted({r for (f, r, _) in index if any(f == nt for nt, _, _ in nt_cols)},
                              key=lambda k: (ORDER.get(k, 99), k))
        nt_rows = []
        for r in nt_resources:
            cells = [DISPLAY.get(r, r)]
            for nt, _, k in nt_cols:
                name = index.get((nt, r, k))
                t = res.get(name, "real") if name else None
                c = fmt_ns(t)
                if t is not None and nt_best[(nt, k)]:
                    c += " (%.2fx)" % (t / nt_best[(nt, k)])
                cells.append(c)
            nt_rows.append(cells)
        out += ["No touch: the same requests, releases and window, with no read and no write "
                "(the allocator's cost alone).", "",
                table(["resource"] + ["%s, K=%d" % (short, k) for _, short, k in nt_cols], nt_rows), "",
                "Wall-clock time per pass, median of repetitions; in brackets, the ratio to the "
                "best peer's in the same column.", ""]
    if len(out) == 2:
        return ""
    if summary:
        targets.append(("Variable-size I/O: zeropool's time per pass / the best peer's",
                        ", ".join("%s %s" % (what, fmt_ratio(x)) for what, x in summary),
                        all(x <= 1.0 for _, x in summary)))
    return "\n".join(out)


def footprint_model_section(results_dir):
    """The table perf/footprint_model printed (Markdown already), if any."""
    path = os.path.join(results_dir, "footprint_model.md")
    if not os.path.exists(path):
        return ""
    with open(path) as f:
        lines = [line.rstrip("\n") for line in f]
    head = [l for l in lines if l.startswith("footprint_model:")]
    rows = [l for l in lines if l.startswith("|")]
    return "\n".join(["### 8, continued. Footprint model: what a pool keeping freed blocks must hold ("
                      + (head[0][len("footprint_model: "):] if head else "") + "; computed, not measured)",
                      ""] + rows + [""])


def machine_section(results_dir):
    path = os.path.join(results_dir, "machine.txt")
    if not os.path.exists(path):
        return ""
    with open(path) as f:
        lines = [l.rstrip() for l in f if l.strip()]
    return "\n".join(["### Machine and run", "", "```"] + lines + ["```", ""])


# ---- SVG -----------------------------------------------------------------------

PALETTE = ["#1b9e77", "#666666", "#d95f02", "#7570b3", "#e7298a", "#66a61e", "#e6ab02",
           "#a6761d", "#1f78b4", "#b2df8a", "#fb9a99", "#cab2d6"]


def esc(s):
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


# zeropool with fit off has a lighter shade of zeropool's colour; the other
# resources take the palette in table order.
EXTRA_COLORS = {"zeropool_exact": "#8fd1bb"}
PALETTE_ORDER = {k: i for i, k in enumerate(k for k, _ in NAMES if k not in EXTRA_COLORS)}


def color(name):
    """One colour per resource, the same in every panel and in the legend."""
    if name in EXTRA_COLORS:
        return EXTRA_COLORS[name]
    return PALETTE[PALETTE_ORDER.get(name, len(PALETTE) - 1) % len(PALETTE)]


def bar_panel(x0, y0, w, h, title, groups, series, values, unit="ns", value_labels=False):
    """Grouped bars: values[(group, series)] -> number; log scale on y."""
    out = []
    vals = [v for v in values.values() if v and v > 0]
    if not vals:
        return out
    lo = 10 ** math.floor(math.log10(min(vals)))
    hi = 10 ** math.ceil(math.log10(max(vals)))
    if hi <= lo:
        hi = lo * 10
    left, bottom, top = 60, 40, 30
    pw, ph = w - left - 10, h - bottom - top

    def y_of(v):
        return y0 + top + ph - ph * (math.log10(v) - math.log10(lo)) / (math.log10(hi) - math.log10(lo))
    out.append('<text x="%d" y="%d" font-size="14" font-weight="bold">%s</text>'
               % (x0 + 10, y0 + 18, esc(title)))
    d = lo
    while d <= hi * 1.0001:
        y = y_of(d)
        out.append('<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#ddd"/>' % (x0 + left, y, x0 + left + pw, y))
        out.append('<text x="%d" y="%.1f" font-size="10" text-anchor="end">%s</text>'
                   % (x0 + left - 4, y + 3, esc(fmt_ns(d) if unit == "ns" else "%g" % d)))
        d *= 10
    gw = pw / max(len(groups), 1)
    bw = gw * 0.85 / max(len(series), 1)
    for gi, g in enumerate(groups):
        gx = x0 + left + gi * gw + gw * 0.075
        for si, s in enumerate(series):
            v = values.get((g, s))
            if not v or v <= 0:
                continue
            y = y_of(v)
            out.append('<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"><title>%s %s: %s</title></rect>'
                       % (gx + si * bw, y, max(bw - 1, 1), y0 + top + ph - y,
                          color(s), esc(DISPLAY.get(s, s)), esc(str(g)), esc(fmt_ns(v))))
            if value_labels:
                out.append('<text x="%.1f" y="%.1f" font-size="10" text-anchor="middle">%s</text>'
                           % (gx + si * bw + bw / 2, y - 3, esc(fmt_ns(v))))
        out.append('<text x="%.1f" y="%d" font-size="11" text-anchor="middle">%s</text>'
                   % (gx + gw * 0.425, y0 + top + ph + 15, esc(str(g))))
    out.append('<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#000"/>'
               % (x0 + left, y0 + top + ph, x0 + left + pw, y0 + top + ph))
    return out


def legend(x0, y0, series):
    out = []
    for i, s in enumerate(series):
        y = y0 + i * 16
        out.append('<rect x="%d" y="%d" width="12" height="12" fill="%s"/>' % (x0, y, color(s)))
        out.append('<text x="%d" y="%d" font-size="11">%s</text>' % (x0 + 16, y + 10, esc(DISPLAY.get(s, s))))
    return out


def write_svg(res, path):
    series = [k for k, _ in NAMES if res.get("round_trip/%s/4096" % k) is not None
              or res.get("mixed_sizes/%s/64" % k) is not None]
    values = {}
    for s in SIZES:
        for r in series:
            v = res.get("round_trip/%s/%d" % (r, s))
            if v is not None:
                values[(size_label(s), r)] = v
    mixed = [k for k, _ in NAMES if res.get("mixed_sizes/%s/64" % k) is not None]
    mvalues = {("CPU per step", r): res.get("mixed_sizes/%s/64" % r) for r in mixed}
    W, H = 1100, 720
    parts = ['<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif">' % (W, H),
             '<rect width="100%" height="100%" fill="white"/>']
    parts += bar_panel(0, 0, 820, 360, "1. Round trip allocate + deallocate, CPU time (log scale)",
                       [size_label(s) for s in SIZES], series, values)
    parts += legend(840, 40, series)
    parts += bar_panel(0, 370, 820, 340, "6. Mixed sizes 1 KiB..1 MiB, 64 live: CPU per step (log scale)",
                       ["CPU per step"], mixed, mvalues, value_labels=True)
    parts.append('<text x="%d" y="%d" font-size="10" fill="#555">generated by perf/report/report.py from the benchmark JSON; medians of repetitions</text>'
                 % (10, H - 6))
    parts.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(parts) + "\n")


# ---- registered buffers for io_uring (perf/bench/uring_read_bench.cpp) ------

URING_SIZES = ["4KiB", "64KiB", "1MiB"]
URING_DEPTHS = [1, 32]
URING_MODES = [("read_fixed", "READ_FIXED, registered pool blocks"),
               ("read", "READ, the same blocks unregistered"),
               ("pread", "pread(2) from a thread pool")]


def uring_section(res, targets):
    """O_DIRECT reads through io_uring: READ_FIXED against READ and pread."""
    def row(size, qd, mode):
        return "uring_read/%s/qd:%d/%s/real_time" % (size, qd, mode)
    if not any(res.get(row(s, q, m), "real") is not None
               for s in URING_SIZES for q in URING_DEPTHS for m, _ in URING_MODES):
        return ""
    header = ["mode"] + ["%s, QD %d" % (s, q) for s in URING_SIZES for q in URING_DEPTHS]
    iops_rows, cpu_rows = [], []
    for mode, label in URING_MODES:
        iops, cpu = [label], [label]
        for s in URING_SIZES:
            for q in URING_DEPTHS:
                n = row(s, q, mode)
                ips = res.get(n, "items_per_second")
                per_io = res.get(n, "cpu_us_per_io")
                fixed = res.get(row(s, q, "read_fixed"), "cpu_us_per_io")
                iops.append("-" if ips is None else "%.1fk" % (ips / 1e3))
                if per_io is None:
                    cpu.append("-")
                elif mode == "read_fixed" or not fixed:
                    cpu.append("%.1f us" % per_io)
                else:
                    cpu.append("%.1f us (%.2fx)" % (per_io, per_io / fixed))
        iops_rows.append(iops)
        cpu_rows.append(cpu)
    big_fixed = res.get(row("1MiB", 32, "read_fixed"), "cpu_us_per_io")
    big_read = res.get(row("1MiB", 32, "read"), "cpu_us_per_io")
    if big_fixed and big_read:
        targets.append(("io_uring: CPU per 1 MiB O_DIRECT read at QD 32, READ / READ_FIXED",
                        "%.2fx (%.1f us against %.1f us)" % (big_read / big_fixed, big_read, big_fixed), True))
    return "\n".join([
        "### io_uring: O_DIRECT reads into registered pool blocks", "",
        "Reads per second (wall clock, median of repetitions):", "",
        table(header, iops_rows), "",
        "Process CPU time per read (user and system, every thread); in brackets, the ratio to READ_FIXED's:", "",
        table(header, cpu_rows), "",
        "Random O_DIRECT reads of a 1 GiB file on this machine's disk (ext4 on virtio) into page-aligned "
        "blocks of a zeropool pool, QD reads in flight; READ_FIXED rows use an io_uring_registry as the "
        "pool's upstream, so each block was registered once, before the timed reads "
        "(perf/bench/uring_read_bench.cpp says what the disk limits).", ""])


def uring_find_section(res, targets):
    """What find() costs per READ_FIXED: the lookup of a block's slot."""
    def row(blocks, threads):
        return "uring_find/%d/threads:%d" % (blocks, threads)
    counts, depths = [32, 1024], [1, 2]
    if not any(res.get(row(b, t)) is not None for b in counts for t in depths):
        return ""
    rows = []
    for t in depths:
        cells = ["%d thread%s" % (t, "" if t == 1 else "s")]
        for b in counts:
            v = res.get(row(b, t))
            cells.append("-" if v is None else "%.1f ns" % v)
        rows.append(cells)
    lines = ["### io_uring: the slot lookup per read", "",
             "CPU time per `io_uring_registry::find()`, per thread, with that many registered blocks "
             "(random blocks; median of repetitions):", "",
             table(["threads"] + ["%d blocks" % b for b in counts], rows), ""]
    worst = res.get(row(1024, 2))
    per_read = res.get("uring_read/4KiB/qd:32/read_fixed/real_time", "cpu_us_per_io")
    if worst is not None and per_read:
        share = worst / (per_read * 1e3)
        targets.append(("io_uring: find() at 1024 blocks, 2 threads, against the CPU of a 4 KiB READ_FIXED at QD 32",
                        "%.2f%% (%.1f ns against %.1f us)" % (100 * share, worst, per_read), True))
        lines += ["At 1024 blocks on 2 threads a lookup is %.2f%% of the CPU time of a 4 KiB READ_FIXED "
                  "at queue depth 32 (%.1f us, table above)." % (100 * share, per_read), ""]
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--results", required=True)
    ap.add_argument("--markdown", required=True)
    ap.add_argument("--svg", required=True)
    args = ap.parse_args()

    res = Results(args.results)
    if not res.rows:
        sys.exit("report.py: no bench_*.json in %s" % args.results)
    targets = []
    sections = [machine_section(args.results),
                round_trip_section(res, "round_trip", "1. Round trip, bytes untouched", targets),
                round_trip_section(res, "round_trip_touch",
                                   "2. Round trip, one byte written per 4 KiB page", targets),
                buffer_api_section(res, targets),
                threads_section(res, targets),
                producer_consumer_section(res, targets),
                mixed_section(res, targets),
                footprint_model_section(args.results),
                file_read_section(args.results, targets),
                variable_io_section(res, targets),
                uring_section(res, targets),
                uring_find_section(res, targets)]
    # The headline ratios, in workload order (the bool each section adds is
    # not shown: goals live in the issues, not in the reference tables).
    summary = ["### Summary", "",
               table(["figure", "measured"], [[t, m] for t, m, _ in sorted(targets, key=lambda x: x[0])]), ""]
    generated = "\n".join([BEGIN, ""] + summary + [s for s in sections if s] + [END])

    text = ""
    if os.path.exists(args.markdown):
        with open(args.markdown) as f:
            text = f.read()
    if BEGIN in text and END in text:
        text = text[:text.index(BEGIN)] + generated + text[text.index(END) + len(END):]
    else:
        text = (text.rstrip("\n") + "\n\n" if text else "# Benchmarks\n\n") + generated + "\n"
    with open(args.markdown, "w") as f:
        f.write(text)
    write_svg(res, args.svg)
    print("report.py: wrote %s and %s (%d benchmark rows)" % (args.markdown, args.svg, len(res.rows)))


if __name__ == "__main__":
    main()
