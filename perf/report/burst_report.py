#!/usr/bin/env python3
"""Chart and table of burst then steady (perf/tools/burst_then_steady.cpp), from its CSVs.

    python3 perf/report/burst_report.py --results build/perf/results/burst \
        --markdown docs/benchmarks.md --svg docs/burst_then_steady.svg

Reads <peer>.csv (columns peer,t_s,rss_bytes,idle_bytes,upstream_allocations;
t_s is seconds since the burst was freed, negative during the burst), written
by perf/run_benchmarks.sh into build/perf/results/burst/. Writes a line chart
of RSS over time as SVG, and a Markdown table into the Markdown file between
the marker comments below (the rest of the file is left as it is; when the
markers are absent, a "## Burst then steady" section holding them is added at
the end). Per peer, computed as burst_then_steady computes its own summary:
  burst MiB      the highest RSS sampled;
  steady MiB     the median RSS over the last 10 s of the steady phase (its
                 last half when it is shorter than 20 s);
  settle s       the first time after the burst from which RSS stays within
                 10% of the steady level until the end;
  upstream       zeropool peers: upstream allocations during the steady phase
                 after its first second.
Standard library only (no matplotlib): the SVG is written by hand.
"""

import argparse
import csv
import glob
import math
import os
import sys

BEGIN = "<!-- burst_then_steady:begin -->"
END = "<!-- burst_then_steady:end -->"
SECTION_HEAD = ("## Burst then steady\n\n"
                "How long each allocator keeps the memory of a 1 GiB burst that is over while the "
                "program goes on with an 8 MiB working set: written by "
                "`perf/report/burst_report.py` from the CSVs of `perf/tools/burst_then_steady.cpp`.\n\n")

MIB = float(1 << 20)
STEADY_WINDOW_S = 10.0
SETTLE_TOLERANCE = 0.10
UPS_SKIP_S = 1.0

# Display names of the peers, in table order, and their colours.
NAMES = [
    ("zeropool", "zeropool (default config)"),
    ("zeropool_releaser", "zeropool + idle_releaser"),
    ("glibc", "glibc malloc"),
    ("jemalloc", "jemalloc (default decay)"),
    ("tcmalloc", "tcmalloc"),
    ("mimalloc", "mimalloc"),
    ("std_pool", "std sync pool, large blocks"),
]
ORDER = {k: i for i, (k, _) in enumerate(NAMES)}
DISPLAY = dict(NAMES)
PALETTE = ["#1b9e77", "#1f78b4", "#666666", "#d95f02", "#7570b3", "#e7298a", "#e6ab02",
           "#a6761d", "#66a61e"]
DASHES = {"zeropool_releaser": "6,3"}


def median(values):
    v = sorted(values)
    n = len(v)
    if n == 0:
        return None
    return v[n // 2] if n % 2 else 0.5 * (v[n // 2 - 1] + v[n // 2])


def table(header, rows):
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(out)


def esc(s):
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def color(name):
    return PALETTE[ORDER.get(name, len(PALETTE) - 1) % len(PALETTE)]


def load(directory):
    """{peer: [(t, rss, idle or None, upstream or None), ...]} in time order."""
    runs = {}
    for path in sorted(glob.glob(os.path.join(directory, "*.csv"))):
        with open(path, newline="") as f:
            for row in csv.DictReader(f):
                idle = row.get("idle_bytes") or ""
                ups = row.get("upstream_allocations") or ""
                runs.setdefault(row["peer"], []).append(
                    (float(row["t_s"]), int(row["rss_bytes"]),
                     int(idle) if idle else None, int(ups) if ups else None))
    for samples in runs.values():
        samples.sort(key=lambda s: s[0])
    return runs


def summarise(samples):
    """(burst RSS, steady RSS, settle seconds or None, steady upstream allocations or None)."""
    last = samples[-1][0]
    window = min(STEADY_WINDOW_S, last / 2)
    burst = max(s[1] for s in samples)
    steady = median([s[1] for s in samples if s[0] >= last - window])
    settle = None
    for t, rss, _, _ in samples:
        if t < 0 or math.copysign(1.0, t) < 0:  # during the burst ("-0.000000" too)
            continue
        if abs(rss - steady) <= SETTLE_TOLERANCE * steady:
            if settle is None:
                settle = t
        else:
            settle = None
    ups = None
    if samples[-1][3] is not None:
        after = next((s for s in samples if s[0] >= UPS_SKIP_S), None)
        if after is not None:
            ups = samples[-1][3] - after[3]
    return burst, steady, settle, ups


def peers_in_order(runs):
    return sorted(runs, key=lambda k: (ORDER.get(k, 99), k))


def markdown(runs):
    rows = []
    for peer in peers_in_order(runs):
        burst, steady, settle, ups = summarise(runs[peer])
        rows.append([DISPLAY.get(peer, peer), "%.0f" % (burst / MIB), "%.1f" % (steady / MIB),
                     "never" if settle is None else "%.1f" % settle,
                     "-" if ups is None else "%d" % ups])
    length = max(s[-1][0] for s in runs.values())
    return "\n".join([
        "![burst then steady: RSS over time](burst_then_steady.svg)", "",
        table(["peer", "burst peak RSS, MiB", "steady RSS, MiB", "seconds to within 10% of steady",
               "upstream allocations, steady phase"], rows), "",
        "One run per peer, each in a process of its own, steady phase of %.0f s. The burst holds "
        "1 MiB blocks live at once (1024 by default: `--burst-mib`), one byte written per page, "
        "then frees them all (t = 0); then every millisecond 8 blocks of 1 MiB are allocated, "
        "written and freed. RSS is the whole process's (`/proc/self/statm`, sampled every 100 ms "
        "between two steps, when the working set is freed), so a few MiB of code and libraries "
        "count too, and an allocator that gives the working set back to the kernel at every free "
        "shows less than 8 MiB, and pays page faults at every step instead (`burst_then_steady` "
        "prints the steps per second each peer managed). Steady RSS: the median over the last "
        "10 s. Seconds to within 10%%: the first sample after the burst from which RSS stays "
        "within 10%% of that steady level; a peer that keeps the burst's memory is there at "
        "once, at the burst's level, so read the steady column first. Upstream allocations "
        "(zeropool only, from `stats()`): during the steady phase after its first second; 0 "
        "means the pool kept its working set while it gave the rest back." % length, ""])


def nice_ticks(lo, hi):
    """1-2-5 ticks within [lo, hi] (MiB, log scale)."""
    out = []
    e = math.floor(math.log10(lo))
    while 10 ** e <= hi:
        for m in (1, 2, 5):
            v = m * 10 ** e
            if lo <= v <= hi:
                out.append(v)
        e += 1
    return out


def fmt_mib(v):
    return "%d GiB" % (v // 1024) if v >= 1024 and v % 1024 == 0 else "%g MiB" % v


def write_svg(runs, path):
    peers = peers_in_order(runs)
    t_min = min(s[0][0] for s in runs.values())
    t_max = max(s[-1][0] for s in runs.values())
    t_min = math.floor(min(t_min, 0.0))
    rss_all = [s[1] / MIB for samples in runs.values() for s in samples if s[1] > 0]
    # The 1-2-5 steps just around the data.
    steps = [m * 10 ** e for e in range(-1, 7) for m in (1, 2, 5)]
    y_lo = max([v for v in steps if v <= min(rss_all)] or [steps[0]])
    y_hi = min([v for v in steps if v >= max(rss_all)] or [steps[-1]])
    W, H = 1060, 560
    left, right, top, bottom = 70, 290, 40, 50
    pw, ph = W - left - right, H - top - bottom

    def x_of(t):
        return left + pw * (t - t_min) / (t_max - t_min)

    def y_of(mib):
        mib = max(mib, y_lo)
        return top + ph - ph * (math.log10(mib) - math.log10(y_lo)) / (math.log10(y_hi) - math.log10(y_lo))

    parts = ['<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif">' % (W, H),
             '<rect width="100%" height="100%" fill="white"/>',
             '<text x="%d" y="22" font-size="15" font-weight="bold">%s</text>'
             % (left, esc("Burst then steady: RSS after a burst is freed at t = 0 (log scale)"))]
    for v in nice_ticks(y_lo, y_hi):
        y = y_of(v)
        parts.append('<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#ddd"/>' % (left, y, left + pw, y))
        parts.append('<text x="%d" y="%.1f" font-size="11" text-anchor="end">%s</text>'
                     % (left - 5, y + 4, esc(fmt_mib(v))))
    span = t_max - t_min
    step = next(s for s in (1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1200, 3600) if span / s <= 12)
    t = math.ceil(t_min / step) * step
    while t <= t_max + 1e-9:
        x = x_of(t)
        parts.append('<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#eee"/>' % (x, top, x, top + ph))
        parts.append('<text x="%.1f" y="%d" font-size="11" text-anchor="middle">%g</text>'
                     % (x, top + ph + 16, t))
        t += step
    x0 = x_of(0.0)
    parts.append('<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#999" stroke-dasharray="3,3"/>'
                 % (x0, top, x0, top + ph))
    parts.append('<text x="%.1f" y="%d" font-size="10" fill="#555">burst freed</text>' % (x0 + 4, top + 12))
    parts.append('<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#000"/>' % (left, top + ph, left + pw, top + ph))
    parts.append('<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#000"/>' % (left, top, left, top + ph))
    parts.append('<text x="%.1f" y="%d" font-size="12" text-anchor="middle">seconds since the burst was freed</text>'
                 % (left + pw / 2, H - 12))
    parts.append('<text x="16" y="%.1f" font-size="12" text-anchor="middle" transform="rotate(-90 16 %.1f)">'
                 'RSS of the process</text>' % (top + ph / 2, top + ph / 2))
    for peer in peers:
        points = " ".join("%.1f,%.1f" % (x_of(t), y_of(rss / MIB)) for t, rss, _, _ in runs[peer])
        dash = ' stroke-dasharray="%s"' % DASHES[peer] if peer in DASHES else ""
        parts.append('<polyline fill="none" stroke="%s" stroke-width="1.8"%s points="%s"><title>%s</title></polyline>'
                     % (color(peer), dash, points, esc(DISPLAY.get(peer, peer))))
    lx = left + pw + 20
    parts.append('<text x="%d" y="%d" font-size="11" font-weight="bold">peer: steady RSS</text>' % (lx, top + 4))
    for i, peer in enumerate(peers):
        y = top + 22 + i * 20
        _, steady, _, _ = summarise(runs[peer])
        dash = ' stroke-dasharray="%s"' % DASHES[peer] if peer in DASHES else ""
        parts.append('<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="%s" stroke-width="2.5"%s/>'
                     % (lx, y - 4, lx + 22, y - 4, color(peer), dash))
        parts.append('<text x="%d" y="%d" font-size="11">%s: %.0f MiB</text>'
                     % (lx + 28, y, esc(DISPLAY.get(peer, peer)), steady / MIB))
    parts.append('<text x="10" y="%d" font-size="10" fill="#555">generated by perf/report/burst_report.py from '
                 'the CSVs of perf/tools/burst_then_steady.cpp; one run per peer, RSS sampled every 100 ms</text>'
                 % (H - 2))
    parts.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(parts) + "\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--results", required=True, help="directory of the <peer>.csv files")
    ap.add_argument("--markdown", required=True)
    ap.add_argument("--svg", required=True)
    args = ap.parse_args()

    runs = {k: v for k, v in load(args.results).items() if v}
    if not runs:
        sys.exit("burst_report.py: no <peer>.csv in %s" % args.results)
    generated = "\n".join([BEGIN, "", markdown(runs), END])

    text = ""
    if os.path.exists(args.markdown):
        with open(args.markdown) as f:
            text = f.read()
    if BEGIN in text and END in text and text.index(BEGIN) < text.index(END):
        text = text[:text.index(BEGIN)] + generated + text[text.index(END) + len(END):]
    else:
        text = (text.rstrip("\n") + "\n\n" if text else "# Benchmarks\n\n") + SECTION_HEAD + generated + "\n"
    with open(args.markdown, "w") as f:
        f.write(text)
    write_svg(runs, args.svg)
    print("burst_report.py: wrote %s and %s (%d peers)" % (args.markdown, args.svg, len(runs)))


if __name__ == "__main__":
    main()
