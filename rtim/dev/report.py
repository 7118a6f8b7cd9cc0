"""Run reports: the same figures as `summary.json` and as one self-contained HTML page.

Plots are rendered with matplotlib (Agg) to PNG and embedded as data URIs, so the page opens
anywhere — a browser on a laptop, a CI artifact viewer — without a server or extra files.
"""

from __future__ import annotations

import base64
import html
import io
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["bar_chart", "estimates_chart", "histogram", "line_chart", "write_report"]


def _png(fig: Any) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def _figure(width: float = 7.0, height: float = 3.6) -> tuple[Any, Any]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(width, height))
    ax.spines[["top", "right"]].set_visible(False)
    return fig, ax


def line_chart(
    title: str,
    x: Sequence[float],
    series: Mapping[str, Sequence[float | None]],
    xlabel: str,
    ylabel: str,
    *,
    bands: Mapping[str, tuple[Sequence[float], Sequence[float]]] | None = None,
) -> str:
    """A line chart (optional shaded bands per series) as a PNG data URI."""
    fig, ax = _figure()
    for name, values in series.items():
        points = [(a, b) for a, b in zip(x, values, strict=False) if b is not None]
        if points:
            ax.plot([p[0] for p in points], [p[1] for p in points], marker=".", label=name)
        if bands and name in bands:
            low, high = bands[name]
            ax.fill_between(list(x)[: len(low)], low, high, alpha=0.15)
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    if series:
        ax.legend()
    return _png(fig)


def bar_chart(title: str, counts: Mapping[str, float], xlabel: str = "", top: int = 25) -> str:
    """A horizontal bar chart of the largest `top` counts, as a PNG data URI."""
    items = sorted(counts.items(), key=lambda kv: kv[1], reverse=True)[:top]
    fig, ax = _figure(7.0, max(2.0, 0.28 * len(items) + 1))
    if items:
        ax.barh([k for k, _ in reversed(items)], [v for _, v in reversed(items)], color="#4878cf")
    else:
        ax.text(0.5, 0.5, "none", ha="center", va="center", transform=ax.transAxes)
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    return _png(fig)


def histogram(title: str, values: Sequence[float], xlabel: str, bins: int = 40) -> str:
    """A histogram (log-scaled counts) as a PNG data URI."""
    fig, ax = _figure()
    if values:
        ax.hist(values, bins=bins, color="#6acc65")
        ax.set_yscale("log")
    else:
        ax.text(0.5, 0.5, "no samples", ha="center", va="center", transform=ax.transAxes)
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    return _png(fig)


def _value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.4g}"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, list | dict):
        return html.escape(json.dumps(value))
    return html.escape(str(value))


def write_report(
    out_dir: Path,
    title: str,
    summary: Mapping[str, Any],
    figures: Sequence[tuple[str, str]],
    headline: Sequence[str],
    *,
    notes: Sequence[str] = (),
) -> tuple[Path, Path]:
    """Write `summary.json` and `report.html` into `out_dir`; return both paths.

    `figures` are (caption, data URI) pairs; `headline` names the summary keys shown on top.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    html_path = out_dir / "report.html"
    json_path = out_dir / "summary.json"
    full = {**summary, "report_html": str(html_path)}
    json_path.write_text(json.dumps(full, indent=2, sort_keys=True, default=str) + "\n")
    rows = "\n".join(
        f"<tr><th>{html.escape(k)}</th><td>{_value(summary.get(k))}</td></tr>" for k in headline
    )
    images = "\n".join(
        f'<figure><img alt="{html.escape(c)}" src="{uri}"><figcaption>{html.escape(c)}'
        "</figcaption></figure>"
        for c, uri in figures
    )
    notes_html = "".join(f"<li>{html.escape(n)}</li>" for n in notes)
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 1100px; color: #222; }}
table {{ border-collapse: collapse; margin-bottom: 1.5rem; }}
th, td {{ text-align: left; padding: .25rem .8rem; border-bottom: 1px solid #ddd; }}
figure {{ display: inline-block; margin: .5rem; vertical-align: top; }}
img {{ max-width: 520px; }} figcaption {{ font-size: .85rem; color: #555; }}
</style></head><body>
<h1>{html.escape(title)}</h1>
<table>{rows}</table>
<ul>{notes_html}</ul>
{images}
<p>Every figure above is also in <code>summary.json</code> next to this page.</p>
</body></html>
"""
    html_path.write_text(page)
    return json_path, html_path


def estimates_chart(result: Mapping[str, Any]) -> str:
    """Off-policy estimates with their intervals next to the logged reward, as a PNG URI."""
    fig, ax = _figure(6.0, 3.2)
    names = ["logged", *[k.upper() for k in result["estimates"]]]
    values = [result["logged_reward_mean"]] + [e["value"] for e in result["estimates"].values()]
    cis = [result["logged_reward_ci95"]] + [e["ci95"] for e in result["estimates"].values()]
    for i, (value, (low, high)) in enumerate(zip(values, cis, strict=True)):
        if value is None:
            continue
        lo = value - low if low is not None else 0.0
        hi = high - value if high is not None else 0.0
        ax.errorbar([i], [value], yerr=[[lo], [hi]], fmt="o", capsize=6,
                    color="#888" if i == 0 else "#4878cf")  # fmt: skip
    ax.set_xticks(range(len(names)), names)
    ax.set_ylabel("reward per decision")
    ax.set_title(str(result.get("target_policy", "")))
    ax.grid(alpha=0.3, axis="y")
    return _png(fig)
