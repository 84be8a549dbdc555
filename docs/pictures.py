#!/usr/bin/env python3
"""Draws the pictures of the README and BENCHMARKS.md as SVG files in docs/.

    python3 docs/pictures.py

The two diagrams (the path of a request, many instances) are drawn from the lists below; the
three plots from bench/results.json, where the numbers of the benchmark runs BENCHMARKS.md
reports are kept. Standard library only: no network, no plotting package.
"""

import json
import os
from xml.sax.saxutils import escape

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
FONT = 'font-family="Helvetica, Arial, sans-serif" font-size="13"'
INK, MUTED, GRID = "#1d232a", "#5b6570", "#d5dae0"
COLOURS = ["#3b6fd8", "#8a94a0", "#ef6c00", "#2e7d32", "#c62828", "#6a1b9a"]
ARROW = ('<defs><marker id="a" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" '
         'markerHeight="7" orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="#5b6570"/>'
         '</marker></defs>')


def svg(width, height, title, body):
    return "\n".join([
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" {FONT}>',
        f"<title>{escape(title)}</title>",
        '<rect width="100%" height="100%" fill="#ffffff"/>',
        ARROW,
        *body,
        "</svg>",
    ]) + "\n"


def text(x, y, words, fill=INK, size=None, anchor="start", bold=False):
    extra = f' font-size="{size}"' if size else ""
    extra += ' font-weight="bold"' if bold else ""
    return (f'<text x="{x}" y="{y}" fill="{fill}" text-anchor="{anchor}"{extra}>'
            f"{escape(words)}</text>")


def box(x, y, w, h, fill, stroke):
    return f'<rect x="{x}" y="{y}" width="{w}" height="{h}" rx="6" fill="{fill}" stroke="{stroke}"/>'


def arrow(x1, y1, x2, y2, colour=MUTED):
    return (f'<line x1="{x1}" y1="{y1}" x2="{x2}" y2="{y2}" stroke="{colour}" '
            'marker-end="url(#a)"/>')


# The checks of a request in order: (the check, what refuses, the answer). A check without
# a name refuses from the check above it.
REQUEST_PATH = [
    ("The API-KEY header", "missing or empty", "401 needs an API key"),
    ("Shape: prefix and CRC-32 checksum", "malformed, several keys", "401 invalid (one body)"),
    ("Length: no stored key has it (a spray)", "refused before any hash", "401 invalid (one body)"),
    ("Digest: the memo's, else SHA-256 (HMAC)", None, None),
    ("Digest filter: every stored digest", "not held (no store query)", "401 invalid (one body)"),
    ("Cache of verified keys, else the store", "unknown, revoked, expired", "401 invalid (one body)"),
    (None, "the store is unreachable", "503, never the handler"),
    ("Networks (allow_ip, trusted proxies)", "from outside them", "403 address not allowed"),
    ("Rate limit and quota", "over a limit", "429 with Retry-After"),
    ("The route: groups (any), scopes (all)", "outside, or a scope missing", "403 (its own detail each)"),
]


def request_path():
    width, top, row, x, w = 800, 76, 54, 20, 340
    body = [
        text(20, 30, "A request through apikey, on Rocket and axum alike", size=16, bold=True),
        text(20, 52, "Cheapest checks first; a refusal leaves to the right and never reaches "
                     "the handler.", fill=MUTED),
    ]
    y = top
    last_box = None
    for check, why, answer in REQUEST_PATH:
        if check:
            if last_box is not None:
                body.append(arrow(x + w / 2, last_box + 36, x + w / 2, y))
            body.append(box(x, y, w, 36, "#e8f0fe", "#3b6fd8"))
            body.append(text(x + 12, y + 23, check))
            last_box = y
        if why:
            mid = y + 18
            if check:
                body.append(arrow(x + w, mid, x + w + 158, mid, "#c62828"))
            else:
                # A second way the check above refuses: down from its box, then across.
                body.append(f'<polyline points="{x + w - 30},{last_box + 36} {x + w - 30},{mid} '
                            f'{x + w + 158},{mid}" fill="none" stroke="#c62828" '
                            'marker-end="url(#a)"/>')
            body.append(text(x + w + 8, mid - 6, why, fill="#c62828", size=11))
            body.append(box(x + w + 162, y + 4, 252, 28, "#fdecea", "#c62828"))
            body.append(text(x + w + 172, y + 23, answer, fill="#8e1c1c"))
        y += row
    body.append(arrow(x + w / 2, last_box + 36, x + w / 2, y + 4, "#2e7d32"))
    body.append(box(x, y + 6, width - 40, 36, "#e6f4ea", "#2e7d32"))
    body.append(text(x + 12, y + 29, "The handler runs with the caller: user, key name, groups, "
                                     "scopes, metadata (cached with the key)"))
    return svg(width, y + 60, "The path of a request through apikey", body)


def instances():
    width, height = 800, 430
    body = [
        text(20, 30, "Many instances, one key store, one Redis", size=16, bold=True),
        text(20, 52, "Keys and their changes live in PostgreSQL; limits are shared through Redis "
                     "leases; every instance caches and filters on its own.", fill=MUTED),
    ]
    body.append(box(300, 76, 200, 40, "#f1f3f5", MUTED))
    body.append(text(400, 101, "load balancer", anchor="middle"))
    for i in range(3):
        x = 60 + i * 250
        body.append(arrow(400, 116, x + 90, 150))
        body.append(box(x, 150, 180, 96, "#e8f0fe", "#3b6fd8"))
        body.append(text(x + 90, 172, f"service instance {i + 1}", anchor="middle", bold=True))
        body.append(text(x + 90, 194, "cache + digest filter", anchor="middle", size=12))
        body.append(text(x + 90, 212, "rate-limit tokens leased", anchor="middle", size=12))
        body.append(text(x + 90, 230, "apikey fairing / layer", anchor="middle", size=12))
        body.append(arrow(x + 60, 246, 250, 320))
        body.append(arrow(x + 130, 246, 560, 320))
    body.append(box(120, 320, 260, 70, "#e6f4ea", "#2e7d32"))
    body.append(text(250, 344, "PostgreSQL: keys, audit, usage", anchor="middle", bold=True))
    body.append(text(250, 364, "LISTEN/NOTIFY: changes within ms,", anchor="middle", size=12))
    body.append(text(250, 380, "a heartbeat proves the feed alive", anchor="middle", size=12))
    body.append(box(430, 320, 260, 70, "#fff3e0", "#ef6c00"))
    body.append(text(560, 344, "Redis (limits_url)", anchor="middle", bold=True))
    body.append(text(560, 364, "rate limits and quotas across instances;", anchor="middle", size=12))
    body.append(text(560, 380, "down: limits fall back per instance", anchor="middle", size=12))
    body.append(text(20, 418, "The CLI, the admin page and the management API write to the store; "
                              "every instance hears of it through the feed.", fill=MUTED, size=12))
    return svg(width, height, "Many instances sharing PostgreSQL and Redis", body)


def bars(title, subtitle, cases, series, targets=None, unit="", width=800, fmt="{:,.0f}"):
    """Grouped horizontal bars: one group per case, one bar per series, dashed targets."""
    left, top, bar, gap = 200, 78, 18, 20
    names = list(series)
    peak = max(max(v) for v in series.values())
    if targets:
        peak = max(peak, max(max(v) for v in targets.values()))
    scale = (width - left - 90) / peak
    group = bar * len(names) + gap
    height = top + group * len(cases) + 30 + 22 * len(names)
    body = [text(20, 30, title, size=16, bold=True), text(20, 52, subtitle, fill=MUTED, size=12)]
    for c, case in enumerate(cases):
        y0 = top + c * group
        body.append(text(left - 10, y0 + bar * len(names) / 2 + 4, case, anchor="end"))
        for s, name in enumerate(names):
            value = series[name][c]
            y = y0 + s * bar
            colour = COLOURS[s % len(COLOURS)]
            body.append(f'<rect x="{left}" y="{y}" width="{value * scale:.1f}" '
                        f'height="{bar - 3}" fill="{colour}"/>')
            # The value's label goes past the bar, and past its target's dash when that is
            # just beyond the bar (so that the dash never crosses the label).
            end = value * scale
            if targets and name in targets and 0 <= (targets[name][c] - value) * scale < 40:
                end = targets[name][c] * scale
            body.append(text(left + end + 6, y + bar - 6, fmt.format(value) + unit,
                             size=11, fill=MUTED))
            if targets and name in targets:
                tx = left + targets[name][c] * scale
                body.append(f'<line x1="{tx:.1f}" y1="{y - 1}" x2="{tx:.1f}" y2="{y + bar - 2}" '
                            f'stroke="{INK}" stroke-width="2" stroke-dasharray="3,2"/>')
    y = top + group * len(cases) + 10
    for s, name in enumerate(names):
        colour = COLOURS[s % len(COLOURS)]
        body.append(f'<rect x="{left}" y="{y + s * 22}" width="12" height="12" fill="{colour}"/>')
        label = name + (" (dashed: its target)" if targets and name in targets else "")
        body.append(text(left + 18, y + s * 22 + 11, label, size=12))
    return svg(width, height + 10, title, body)


def plots(results):
    ins = results["instructions"]
    yield "bench-instructions.svg", bars(
        ins["title"], ins["source"], ins["cases"], ins["series"], ins["targets"])
    mem = results["memory"]
    yield "bench-memory.svg", bars(
        mem["title"], mem["source"], mem["rounds"], {"bytes per cached key": mem["bytes"]},
        {"bytes per cached key": [mem["target"]] * len(mem["rounds"])}, unit=" B")
    prop = results["propagation"]
    yield "bench-propagation.svg", bars(
        prop["title"], prop["source"], prop["cases"], prop["series"], unit=" ms",
        fmt="{:,.2f}")


def main():
    with open(os.path.join(ROOT, "bench", "results.json"), encoding="utf-8") as f:
        results = json.load(f)
    pictures = [("request-path.svg", request_path()), ("instances.svg", instances())]
    pictures += list(plots(results))
    for name, content in pictures:
        with open(os.path.join(HERE, name), "w", encoding="utf-8") as f:
            f.write(content)
        print(f"wrote docs/{name}")


if __name__ == "__main__":
    main()
