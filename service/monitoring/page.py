"""The monitoring page: a drift report drawn as inline SVG, with parity and freshness tables.

Pure functions from report dicts (as the service answers and stores them) to one self-contained HTML
document: no JavaScript, no external asset, every text from a report HTML-escaped. What it draws:

- per feature of the drift report (:func:`service.monitoring.drift.histograms`), one histogram
  (``<svg class="histogram" data-feature=NAME>``): the baseline's and the target's **proportions** on
  the baseline's bins, side by side per bin on one shared y axis (``<rect class="bar baseline">`` and
  ``<rect class="bar target">``, one per bin each: a bar's height is its bin's share of its side's
  values), the bins labelled by their edges (numeric, right-closed, open at both ends) or categories,
  a legend, and the feature's verdict colour;
- one PSI chart (``<svg class="psi">``): a bar per feature against its warn and drift thresholds;
- the drift table, the latest parity reports, and the freshness of every online view
  (:mod:`service.monitoring.tables`: the same cells as ``feastline monitor`` prints).

Used by ``GET /monitoring/view`` and ``feastline monitor ... --out``.
"""

from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

from service.monitoring.drift import histograms
from service.monitoring.tables import (
    Table,
    drift_table,
    freshness_table,
    mismatch_table,
    parity_table,
)

BASELINE_COLOUR, TARGET_COLOUR = "#4c78a8", "#f58518"
VERDICT_COLOURS = {"ok": "#2e7d32", "warn": "#e69500", "drift": "#c62828"}
STATUS_COLOURS = {"ok": "#2e7d32", "late": "#c62828", "unknown": "#777777"}
HIST_W, HIST_H = 540, 300  # two histograms side by side in a 1200 px window
PLOT_LEFT, PLOT_TOP, PLOT_RIGHT, PLOT_BOTTOM = 62, 36, 16, 92  # margins around the plot area, px
PSI_ROW, PSI_LABEL, PSI_W = 26, 170, 520
MAX_LABEL = 14


def render_page(
    report: Mapping[str, Any] | None,
    parity: Sequence[Mapping[str, Any]] = (),
    freshness: Mapping[str, Any] | None = None,
) -> str:
    """The whole HTML document.

    Args:
        report: a stored drift report (``DriftReports.get``: with its bins), or None for a page of
            parity and freshness only.
        parity: parity reports (``POST /monitoring/parity``'s answers), one section each.
        freshness: ``GET /monitoring/freshness``'s answer (``{"now", "feature_views"}``), or None.

    Returns:
        ``<!doctype html>...``: UTF-8 text, inline CSS and SVG only.
    """
    title = f"drift report {report['id']}" if report is not None else "feature monitoring"
    parts = [_head(title)]
    if report is not None:
        parts.append(_drift_section(report))
    parts.append(_parity_section(parity))
    if freshness is not None:
        parts.append(_freshness_section(freshness))
    parts.append("</body></html>\n")
    return "\n".join(parts)


def _head(title: str) -> str:
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 1.5rem; color: #222; }}
h1 {{ font-size: 1.3rem; }} h2 {{ font-size: 1.1rem; margin-top: 2rem; }} h3 {{ font-size: 1rem; margin: 0 0 .3rem; }}
table {{ border-collapse: collapse; margin: .5rem 0; }}
td, th {{ border: 1px solid #ccc; padding: 3px 8px; text-align: left; font-size: .9rem; }}
td.num {{ text-align: right; font-variant-numeric: tabular-nums; }}
.verdict {{ color: #fff; padding: 1px 8px; border-radius: 4px; font-weight: 600; }}
.feature {{ display: inline-block; vertical-align: top; margin: 0 1rem 1rem 0; padding: .5rem;
  border: 2px solid #ccc; border-radius: 6px; }}
svg text {{ font-size: 11px; fill: #333; }}
</style></head>
<body>
<h1>{escape(title)}</h1>"""


def _badge(verdict: str, colours: Mapping[str, str] = VERDICT_COLOURS) -> str:
    colour = colours.get(verdict, "#777777")
    return f'<span class="verdict" style="background:{colour}">{escape(verdict)}</span>'


def _html_table(table: Table, table_id: str, badge_column: str | None = None) -> str:
    headers, rows = table
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = []
    for row in rows:
        cells = []
        for h, cell in zip(headers, row, strict=True):
            if h == badge_column:
                colours = STATUS_COLOURS if badge_column == "status" else VERDICT_COLOURS
                cells.append(f"<td>{_badge(cell, colours)}</td>")
            else:
                numeric = cell[:1].isdigit() or cell[:1] == "-"
                cells.append(f"<td{' class=num' if numeric else ''}>{escape(cell)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f'<table id="{escape(table_id)}"><tr>{head}</tr>\n' + "\n".join(body) + "\n</table>"


# -- drift ----------------------------------------------------------------------------------------


def _drift_section(report: Mapping[str, Any]) -> str:
    baseline, target = report["baseline"], report["target"]
    model = f", model <code>{escape(str(baseline['model']))}</code>" if baseline.get("model") else ""
    described = ", ".join(f"{escape(str(k))} <code>{escape(str(v))}</code>" for k, v in target.items())
    feature_items = "\n".join(_feature_block(h) for h in histograms(report))
    return f"""<p id="summary" data-verdict="{escape(str(report["verdict"]))}">verdict {_badge(str(report["verdict"]))}
created <code>{escape(str(report["created_at"]))}</code>. Baseline: training set
<code>{escape(str(baseline["training_set_id"]))}</code>{model} ({baseline.get("row_count", 0):,} rows).
Target: {described}.</p>
{_html_table(drift_table(report), "drift", badge_column="verdict")}
<h2>PSI against the thresholds</h2>
{psi_svg(histograms(report))}
<h2>Baseline and target on the baseline's bins</h2>
<p>Bars: each side's share of its own values (missing values left out) per bin of the baseline.
Numeric bins are right-closed, open at both ends: <code>(-∞, e1], (e1, e2], …, (ek, +∞)</code>.</p>
{feature_items}"""


def _feature_block(h: Mapping[str, Any]) -> str:
    colour = VERDICT_COLOURS.get(str(h["verdict"]), "#777777")
    psi = "PSI n/a" if h["psi"] is None else f"PSI {h['psi']:.4f}"
    return (
        f'<div class="feature" style="border-color:{colour}"><h3>{escape(str(h["name"]))} '
        f"{_badge(str(h['verdict']))} <small>{escape(psi)}</small></h3>\n{histogram_svg(h)}</div>"
    )


def bin_labels(h: Mapping[str, Any]) -> list[str]:
    """One label per bin: a numeric bin by its edges (``(-∞, 12.5]``, ``(12.5, 20]``, ``(20, +∞)``,
    4 significant digits; ``= 2`` for a bin narrower than that; an all-null baseline has no bins), a
    categorical one by its category (the last is ``other``)."""
    if "categories" in h:
        return [str(c) for c in h["categories"]]
    edges = [f"{e:.4g}" for e in h["edges"]]
    if not h["baseline_counts"]:
        return []
    bounds = ["-∞", *edges, "+∞"]
    # a bin narrower than 4 significant digits (the middle one of an all-equal column) holds one value
    return [
        f"= {hi}" if lo == hi else f"({lo}, {hi}{')' if hi == '+∞' else ']'}"
        for lo, hi in zip(bounds[:-1], bounds[1:], strict=True)
    ]


def _shares(counts: Sequence[int]) -> list[float]:
    total = sum(counts)
    return [c / total if total else 0.0 for c in counts]


def _short(label: str) -> str:
    return label if len(label) <= MAX_LABEL else label[: MAX_LABEL - 1] + "…"


def histogram_svg(h: Mapping[str, Any]) -> str:
    """One feature's histogram (an item of :func:`service.monitoring.drift.histograms`) as an ``<svg>``.

    Both sides are drawn as proportions of their own values on one y axis (0 to the largest share,
    rounded up to a tenth): a bar's height is ``share / y_max * plot height`` px, so heights are
    proportional to counts within a side and comparable across sides. No bins (an all-null baseline):
    the plot says so and draws no bar.
    """
    labels = bin_labels(h)
    b_share, t_share = _shares(h["baseline_counts"]), _shares(h["target_counts"])
    plot_w, plot_h = HIST_W - PLOT_LEFT - PLOT_RIGHT, HIST_H - PLOT_TOP - PLOT_BOTTOM
    x0, y0 = PLOT_LEFT, PLOT_TOP + plot_h  # the plot's bottom-left corner
    peak = max([*b_share, *t_share, 0.0])
    y_max = max(0.1, -(-peak * 10 // 1) / 10)  # ceil to a tenth
    name = escape(str(h["name"]))
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="histogram" data-feature="{name}" width="{HIST_W}" '
        f'height="{HIST_H}" role="img" aria-label="baseline and target distributions of {name}">',
        f'<rect x="0" y="0" width="{HIST_W}" height="{HIST_H}" fill="#ffffff"/>',
    ]
    for i in range(6):  # y grid and tick labels
        value = y_max * i / 5
        y = y0 - plot_h * i / 5
        out.append(f'<line x1="{x0}" y1="{y:.2f}" x2="{x0 + plot_w}" y2="{y:.2f}" stroke="#e3e3e3"/>')
        out.append(f'<text x="{x0 - 6}" y="{y + 4:.2f}" text-anchor="end">{100 * value:.0f}%</text>')
    out.append(
        f'<text x="14" y="{PLOT_TOP + plot_h / 2:.1f}" text-anchor="middle" '
        f'transform="rotate(-90 14 {PLOT_TOP + plot_h / 2:.1f})">share of values</text>'
    )
    n = len(labels)
    if n == 0:
        out.append(
            f'<text x="{x0 + plot_w / 2}" y="{PLOT_TOP + plot_h / 2}" text-anchor="middle">'
            "no bins: the baseline has no values</text>"
        )
    group = plot_w / max(n, 1)
    bar = group * 0.38
    for i, label in enumerate(labels):
        gx = x0 + i * group
        for j, (series, shares, colour) in enumerate(
            (("baseline", b_share, BASELINE_COLOUR), ("target", t_share, TARGET_COLOUR))
        ):
            height = shares[i] / y_max * plot_h
            x = gx + group * 0.12 + j * bar
            count = (h["baseline_counts"] if series == "baseline" else h["target_counts"])[i]
            out.append(
                f'<rect class="bar {series}" x="{x:.3f}" y="{y0 - height:.3f}" width="{bar:.3f}" '
                f'height="{height:.3f}" fill="{colour}"><title>{series} {escape(label)}: {count:,} values '
                f"({100 * shares[i]:.2f}%)</title></rect>"
            )
        cx = gx + group / 2
        out.append(
            f'<text class="bin-label" x="{cx:.2f}" y="{y0 + 12}" text-anchor="end" '
            f'transform="rotate(-40 {cx:.2f} {y0 + 12})">{escape(_short(label))}<title>{escape(label)}</title></text>'
        )
    out.append(f'<line x1="{x0}" y1="{y0}" x2="{x0 + plot_w}" y2="{y0}" stroke="#333"/>')
    out.append(f'<line x1="{x0}" y1="{PLOT_TOP}" x2="{x0}" y2="{y0}" stroke="#333"/>')
    axis = "category" if "categories" in h else "bin of the baseline (edges)"
    out.append(f'<text x="{x0 + plot_w / 2}" y="{HIST_H - 6}" text-anchor="middle">{axis}</text>')
    legend_x = x0 + plot_w - 170
    for j, (series, colour) in enumerate((("baseline", BASELINE_COLOUR), ("target", TARGET_COLOUR))):
        lx = legend_x + j * 90
        out.append(
            f'<rect class="swatch" data-series="{series}" x="{lx}" y="10" width="12" height="12" fill="{colour}"/>'
        )
        out.append(f'<text x="{lx + 16}" y="20">{series}</text>')
    out.append("</svg>")
    return "\n".join(out)


def psi_svg(items: Sequence[Mapping[str, Any]]) -> str:
    """The PSI chart: per feature (items of :func:`service.monitoring.drift.histograms`) a bar of its
    PSI in its verdict's colour, with its warn (dashed amber) and drift (dashed red) thresholds as
    vertical marks, on one linear x axis from 0 past the largest PSI or threshold (round ticks). A null PSI
    (a side without values) draws no bar and says ``n/a``."""
    top = 28
    height = top + PSI_ROW * len(items) + 34
    reach = [float(i["psi"]) for i in items if i["psi"] is not None]
    reach += [float(i["thresholds"]["drift"]) for i in items]
    reach_max = 1.05 * max([*reach, 0.25])
    steps = (0.05, 0.1, 0.2, 0.25, 0.5, 1, 2, 2.5, 5, 10, 20, 50, 100)
    step = next((s for s in steps if reach_max / s <= 6), reach_max / 5)
    ticks = int(-(-reach_max // step))
    x_max = ticks * step
    width = PSI_LABEL + PSI_W + 90

    def x(value: float) -> float:
        return PSI_LABEL + value / x_max * PSI_W

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="psi" width="{width}" height="{height}" role="img" '
        'aria-label="PSI per feature against its thresholds">',
        f'<rect x="0" y="0" width="{width}" height="{height}" fill="#ffffff"/>',
    ]
    for k in range(ticks + 1):
        value = step * k
        out.append(
            f'<line x1="{x(value):.2f}" y1="{top - 6}" x2="{x(value):.2f}" y2="{top + PSI_ROW * len(items)}" '
            'stroke="#eeeeee"/>'
        )
        out.append(
            f'<text x="{x(value):.2f}" y="{top + PSI_ROW * len(items) + 14}" text-anchor="middle">{value:.2g}</text>'
        )
    for r, item in enumerate(items):
        y = top + r * PSI_ROW
        name, verdict = escape(str(item["name"])), str(item["verdict"])
        out.append(f'<text x="{PSI_LABEL - 8}" y="{y + 16}" text-anchor="end">{name}</text>')
        if item["psi"] is None:
            out.append(f'<text class="psi-value" x="{PSI_LABEL + 4}" y="{y + 16}">n/a ({escape(verdict)})</text>')
        else:
            psi = float(item["psi"])
            colour = VERDICT_COLOURS.get(verdict, "#777777")
            out.append(
                f'<rect class="psi-bar" data-feature="{name}" data-psi="{psi!r}" x="{PSI_LABEL}" y="{y + 4}" '
                f'width="{x(psi) - PSI_LABEL:.3f}" height="{PSI_ROW - 8}" fill="{colour}">'
                f"<title>{name}: PSI {psi:.4f}, {escape(verdict)}</title></rect>"
            )
            out.append(f'<text class="psi-value" x="{x(psi) + 4:.2f}" y="{y + 16}">{psi:.4f}</text>')
        for kind, colour in (("warn", VERDICT_COLOURS["warn"]), ("drift", VERDICT_COLOURS["drift"])):
            tx = x(float(item["thresholds"][kind]))
            out.append(
                f'<line class="threshold {kind}" x1="{tx:.2f}" y1="{y}" x2="{tx:.2f}" y2="{y + PSI_ROW}" '
                f'stroke="{colour}" stroke-width="2" stroke-dasharray="4 2"/>'
            )
    legend_y = height - 8
    out.append(f'<text x="{PSI_LABEL}" y="{legend_y}">PSI (ε = 1e-6)</text>')
    for j, (kind, colour) in enumerate((("warn", VERDICT_COLOURS["warn"]), ("drift", VERDICT_COLOURS["drift"]))):
        lx = PSI_LABEL + 160 + j * 150
        out.append(
            f'<line x1="{lx}" y1="{legend_y - 4}" x2="{lx + 18}" y2="{legend_y - 4}" stroke="{colour}" '
            'stroke-width="2" stroke-dasharray="4 2"/>'
        )
        out.append(f'<text x="{lx + 22}" y="{legend_y}">{kind} threshold</text>')
    out.append("</svg>")
    return "\n".join(out)


# -- parity and freshness ---------------------------------------------------------------------------


def _parity_section(reports: Sequence[Mapping[str, Any]]) -> str:
    parts = ['<h2 id="parity-heading">Online/offline parity</h2>']
    if not reports:
        parts.append(
            '<p id="parity-none">No parity report yet in this process (<code>POST /monitoring/parity</code> or '
            "<code>feastline monitor parity</code>).</p>"
        )
    for i, r in enumerate(reports):
        window = r["window"]
        rate = "—" if r["match_rate"] is None else f"{100 * r['match_rate']:.2f}%"
        parts.append(
            f"<h3>{escape(str(r['feature_service']))}: {escape(rate)} exact matches</h3>"
            f"<p>window <code>{escape(str(window['start']))}</code> to <code>{escape(str(window['end']))}</code>, "
            f"{r['requests']:,} requests, {r['rows']:,} rows, {r['mismatch_count']:,} mismatching values.</p>"
        )
        parts.append(_html_table(parity_table(r), f"parity-{i}"))
        if r["mismatches"]:
            parts.append(_html_table(mismatch_table(r), f"mismatches-{i}"))
    return "\n".join(parts)


def _freshness_section(answer: Mapping[str, Any]) -> str:
    return (
        f"<h2>Freshness</h2>\n<p>at the service clock <code>{escape(str(answer['now']))}</code>.</p>\n"
        + _html_table(freshness_table(answer["feature_views"]), "freshness", badge_column="status")
    )
