"""`index.html`: both leaderboards as one static page that needs no network to be read.

Rendered from the validated leaderboard document only. Everything is inline (CSS, a small script, SVG
charts), and a Content-Security-Policy of `default-src 'none'` makes the browser refuse any fetch the
page might attempt. Rows arrive in rank order from the server side, so nothing depends on a timer
(the official page sorted on a 100 ms timer that did not wait for its data). Clicking a column header
sorts by it (again: the other way); `?click=A:score,A:score` clicks headers on load (a task column is
`A:task:esc50`), which is how the browser test clicks.

With the bootstrap (issue 23) every score with an interval reads `mean [low, high]`, the rank cell
carries the rank's 95 % interval, and a blob plot per track (challengeR's rank-stability plot: a disc
per row and rank, its area the share of resamples that put the row there) is drawn as inline SVG.

Names come from submissions: every string is HTML-escaped, in attributes and in SVG alike.
"""

from __future__ import annotations

import html
from typing import Any, Iterable

from harness.rank.formula import display

_CSS = """
:root{--fg:#1b1f24;--muted:#5b6470;--line:#d8dde3;--bg:#fff;--ok:#1a7f37;--warn:#9a6700;--bad:#cf222e;--ref:#57606a;
--accent:#0969da}
*{box-sizing:border-box}
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;color:var(--fg);
background:var(--bg);margin:0 auto;padding:16px 24px 48px;max-width:1800px}
h1{font-size:22px;margin:4px 0}h2{font-size:18px;margin:28px 0 6px}h3{font-size:15px;margin:16px 0 4px}
.meta{color:var(--muted);margin:0 0 8px}.meta code{font-size:12px}
nav a{margin-right:14px}
a{color:var(--accent)}
.warnings{border:1px solid #e7c66b;background:#fff8e1;padding:6px 12px;margin:10px 0;border-radius:6px}
.warnings summary{cursor:pointer;font-weight:600}
.warnings li{margin:2px 0}
.scroll{overflow-x:auto;border:1px solid var(--line);border-radius:6px}
table.board{border-collapse:collapse;font-variant-numeric:tabular-nums;width:max-content;min-width:100%}
table.board th,table.board td{border-bottom:1px solid var(--line);padding:3px 6px;text-align:right;white-space:nowrap}
table.board td.name,table.board th.name{text-align:left;max-width:280px;overflow:hidden;text-overflow:ellipsis}
table.board thead th{position:sticky;top:0;background:#f6f8fa;vertical-align:bottom;z-index:1}
table.board th button{font:inherit;font-weight:600;background:none;border:0;padding:0;cursor:pointer;color:inherit}
table.board th.task button{writing-mode:vertical-rl;transform:rotate(180deg);font-weight:500}
table.board th[aria-sort=ascending] button::after{content:" \\25B2"}
table.board th[aria-sort=descending] button::after{content:" \\25BC"}
.hidden-mark{font-size:10px;color:var(--warn);font-weight:600}
.override-mark{font-size:10px;color:var(--warn);font-weight:600}
.custom-mark{font-size:10px;color:var(--muted,#666);font-weight:600}
sup.override{font-size:9px;margin-left:1px}
td.task{min-width:44px;font-size:12px}
td.rank{font-weight:600}
tr.incomplete td{color:var(--muted);font-style:italic}
tr.reference td.name{color:var(--ref)}
.badge{display:inline-block;font-size:11px;padding:0 5px;border-radius:9px;border:1px solid currentColor;
margin-left:4px;font-style:normal}
.b-verified{color:var(--ok)}.b-unsigned{color:var(--warn)}.b-reference{color:var(--ref)}
.tie{color:var(--warn);font-weight:700}
.mismatch{color:var(--bad);font-weight:600}.match{color:var(--ok)}
.state{font-size:11px;color:var(--muted)}
.state.failed{color:var(--bad)}.state.error{color:var(--bad);font-weight:700}
.clamped{outline:2px dashed var(--bad);outline-offset:-3px}
.legend{display:flex;gap:18px;flex-wrap:wrap;color:var(--muted);font-size:12px;margin:6px 0}
.swatch{display:inline-block;width:120px;height:10px;vertical-align:middle;
background:linear-gradient(to right,hsl(210,70%,96%),hsl(210,70%,30%))}
svg.chart text{font:12px system-ui,"DejaVu Sans",sans-serif;fill:var(--fg)}
svg.chart .axis{stroke:var(--line)}
.ci{display:block;font-size:10px;color:var(--muted);font-weight:400}
td.task .ci{color:inherit;opacity:.85}
.rint{font-size:11px;color:var(--muted);font-weight:400;margin-left:3px}
.rules li{margin:3px 0}
table.plain{border-collapse:collapse}table.plain td,table.plain th{border-bottom:1px solid var(--line);padding:3px 8px;
text-align:left;vertical-align:top}
footer{margin-top:32px;color:var(--muted);font-size:12px}
"""

_JS = """
(function () {
  "use strict";
  function value(cell, type) {
    var v = cell ? cell.getAttribute("data-v") : null;
    if (v === null || v === "") return null;
    return type === "num" ? parseFloat(v) : v.toLowerCase();
  }
  function sortBy(th, dir) {
    var table = th.closest("table"), body = table.tBodies[0];
    var index = Array.prototype.indexOf.call(th.parentNode.children, th), type = th.getAttribute("data-type");
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = value(a.cells[index], type), y = value(b.cells[index], type);
      if (x === null && y === null) return a.getAttribute("data-order") - b.getAttribute("data-order");
      if (x === null) return 1;
      if (y === null) return -1;
      var c = x < y ? -1 : x > y ? 1 : 0;
      if (c === 0) return a.getAttribute("data-order") - b.getAttribute("data-order");
      return dir === "asc" ? c : -c;
    });
    rows.forEach(function (r) { body.appendChild(r); });
    Array.prototype.forEach.call(th.parentNode.children, function (h) { h.removeAttribute("aria-sort"); });
    th.setAttribute("aria-sort", dir === "asc" ? "ascending" : "descending");
    table.setAttribute("data-sorted", th.getAttribute("data-key") + ":" + dir);
  }
  var buttons = document.querySelectorAll("table.board th[data-key] button");
  Array.prototype.forEach.call(buttons, function (button) {
    button.addEventListener("click", function () {
      var th = button.parentNode, now = th.getAttribute("aria-sort");
      var dir = now ? (now === "ascending" ? "desc" : "asc") : th.getAttribute("data-first");
      sortBy(th, dir);
    });
  });
  var clicks = new URLSearchParams(window.location.search).get("click");
  if (clicks) clicks.split(",").forEach(function (spec) {
    var at = spec.indexOf(":"), table = document.getElementById("table-" + spec.slice(0, at));
    if (at < 0 || !table) return;
    Array.prototype.forEach.call(table.querySelectorAll("th[data-key]"), function (th) {
      if (th.getAttribute("data-key") === spec.slice(at + 1)) th.querySelector("button").click();
    });
  });
  document.documentElement.setAttribute("data-ready", "1");
})();
"""

DAGGER = "\u2020"
#: a hidden task's header (a dagger reads as an arrow once rotated)
_HIDDEN_MARK = ' <span class="hidden-mark">hidden</span>'
#: a task X-ARES 0.1.3 marks disabled and the harness scores anyway (xares_disabled_overridden)
OVERRIDE_TEXT = "X-ARES 0.1.3 marks this task disabled; the harness scored it anyway (XaresTask ignores the flag)"
_OVERRIDE_MARK = f' <span class="override-mark" title="{OVERRIDE_TEXT}">X-ARES off</span>'
_OVERRIDE_SUP = f'<sup class="override" title="{OVERRIDE_TEXT}">*</sup>'
#: a task scored from the organizer's own task file, not the registry (harness.tasks.custom)
CUSTOM_TEXT = ("not a registry task: weight from its own TaskConfig.eval_weight, bounds from its metric's natural "
               "range (paper section 4.1)")
_CUSTOM_MARK = f' <span class="custom-mark" title="{CUSTOM_TEXT}">custom</span>'
PLUS_MINUS = "\u00b1"

_CSP = ("default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:; "
        "base-uri 'none'; form-action 'none'")


def e(text: Any) -> str:
    """HTML-escape anything, quotes included (safe in text, attributes and SVG)."""
    return html.escape("" if text is None else str(text), quote=True)


def _heat(value: float) -> tuple[str, str]:
    """Background and text colour for a normalised value in [0, 1]."""
    lightness = 96 - 66 * max(0.0, min(1.0, value))
    return f"hsl(210,70%,{lightness:.0f}%)", "#fff" if lightness < 58 else "#1b1f24"


def _num(value: float | None, digits: int = 3) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def _sortval(value: float | None) -> str:
    return "" if value is None else repr(float(value))


def _rank_cell(row: dict) -> str:
    if row["rank"] is None:
        return '<td class="rank" data-v="" title="not ranked: incomplete">\u2013</td>'
    if row["tie_group"] is not None:
        ahead = row["bootstrap"]["upper_ahead"]
        why = {"precision": "differs from the row above by less than 0.001",
               "spread": "within two standard errors of the row above",
               "bootstrap": f"the row above is ahead in only {_share(ahead)} of the bootstrap resamples"}.get(
            row["tie_reason"] or "", "first row of the tie group")
        return (f'<td class="rank" data-v="{row["rank"]}" title="tie group T{row["tie_group"]}: {e(why)}'
                f'{e(_rank_note(row))}"><span class="tie" data-tie="T{row["tie_group"]}">={row["rank"]}</span> '
                f'<span class="state">T{row["tie_group"]}</span>{_rank_interval(row)}</td>')
    note = _rank_note(row)
    title = f' title="{e(note.strip())}"' if note else ""
    return f'<td class="rank" data-v="{row["rank"]}"{title}>{row["rank"]}{_rank_interval(row)}</td>'


def _share(value: float | None) -> str:
    return "\u2013" if value is None else f"{100 * value:.1f} %"


def _rank_interval(row: dict) -> str:
    """The rank's 95 % interval over the bootstrap resamples, beside the rank."""
    interval = row["bootstrap"]["rank_interval"]
    if interval is None:
        return ""
    low, high = interval
    text = str(low) if low == high else f"{low}\u2013{high}"
    return f'<span class="rint" data-rank-interval="{low}-{high}">[{text}]</span>'


def _rank_note(row: dict) -> str:
    boot = row["bootstrap"]
    if boot["rank_interval"] is None:
        return f"\nno rank interval: {boot['reason']}" if boot["reason"] else ""
    note = (f"\nrank over the resamples: median {boot['rank_median']:g}, 95 % interval "
            f"{boot['rank_interval'][0]}\u2013{boot['rank_interval'][1]}")
    if boot["upper_ahead"] is not None:
        note += f"; the row above is ahead in {_share(boot['upper_ahead'])} of them"
    return note


def _interval_text(interval: list[float] | None) -> str:
    return "" if interval is None else f"[{display(interval[0])}, {display(interval[1])}]"


def _name_cell(row: dict) -> str:
    badge = f'<span class="badge b-{e(row["provenance"])}">{e(row["provenance_label"])}</span>'
    title = e(row["name"] + (f"\nsubmission {row['sha256']}" if row["sha256"] else "") + f"\n{row['source']}")
    if row["link"]:
        name = f'<a href="{e(row["link"])}" title="{title}">{e(row["name"])}</a>'
    else:
        name = f'<span title="{title}">{e(row["name"])}</span>'
    return f'<td class="name" data-v="{e(row["name"])}">{name}{badge}</td>'


def _published_cell(row: dict) -> str:
    if row["published"] is None:
        return '<td class="published" data-v=""></td>'
    if row["published_matches"]:
        return (f'<td class="published match" data-v="{e(row["published"])}" title="recomputed score rounds to the '
                f'published value">{e(row["published"])} \u2713</td>')
    return (f'<td class="published mismatch" data-v="{e(row["published"])}" data-mismatch="1" '
            f'title="published {e(row["published"])}, recomputed {_num(row["score"], 6)}">'
            f'\u26a0 {e(row["published"])} \u2260 {display(row["score"])}</td>')


def _task_cell(cell: dict | None, task: dict, policy: str) -> str:
    if cell is None:
        return '<td class="task" data-v=""></td>'
    state = cell["state"]
    detail = [f"{task['task']} ({task['metric']}, weight {task['weight']})"]
    if state == "value":
        background, colour = _heat(cell["normalised"])
        detail.append(f"raw {cell['raw']!r}, normalised {cell['normalised']:.4f}")
        interval = cell.get("interval")
        if interval:
            detail.append(f"95 % bootstrap interval: raw [{interval['raw'][0]:.4f}, {interval['raw'][1]:.4f}], "
                          f"normalised [{interval['normalised'][0]:.4f}, {interval['normalised'][1]:.4f}]")
        if cell["repeats"] > 1:
            detail.append(f"{cell['repeats']} Track A runs, std {cell['std']:.4f} (normalised)")
        if cell["clamped"]:
            detail.append("outside [worst, best]: clamped")
        overridden = cell.get("xares_disabled_overridden") is True
        if overridden:
            detail.append(OVERRIDE_TEXT)
        flag = (" clamped" if cell["clamped"] else "") + (" overridden" if overridden else "")
        return (f'<td class="task{flag}" data-v="{_sortval(cell["normalised"])}" data-state="value" '
                f'style="background:{background};color:{colour}" title="{e(chr(10).join(detail))}">'
                f'{cell["normalised"]:.3f}{_OVERRIDE_SUP if overridden else ""}'
                + (f'<span class="ci">{_interval_text(interval["normalised"])}</span>' if interval else "")
                + "</td>")
    counted = cell["counted"]
    label = {"failed": "failed", "not_run": "not run", "error": "error"}[state]
    if state != "error":
        label += " (0)" if counted else " (left out)" if policy == "exclude" else ""
    detail.append(f"{label}: {cell['reason']}" if cell["reason"] else label)
    return (f'<td class="task" data-v="{"0" if counted else ""}" data-state="{e(state)}" '
            f'title="{e(chr(10).join(detail))}"><span class="state {e(state)}">{e(label)}</span></td>')


def _version_text(row: dict) -> str:
    if row["reference"]:
        return "published"
    versions = row["versions"]
    return f"X-ARES {versions.get('xares') or '?'} / harness {versions.get('harness') or '?'}"


def _table(board: dict, policy: str) -> str:
    track = board["track"]
    tasks = board["tasks"]
    spread = track == "A"
    heads = [("rank", "Rank", "num", "asc", ""), ("name", "Name", "text", "asc", "name"),
             ("score", "Score", "num", "desc", "")]
    if spread:
        heads.append(("se", "\u00b1 SE", "num", "asc", ""))
    heads += [("public", "Public", "num", "desc", ""), ("published", "Published", "num", "desc", ""),
              ("status", "Status", "text", "asc", ""), ("version", "Version", "text", "asc", "")]
    out = [f'<div class="scroll"><table class="board" id="table-{track}" data-track="{track}"><thead><tr>']
    for key, label, kind, first, cls in heads:
        out.append(f'<th class="{cls}" data-key="{key}" data-type="{kind}" data-first="{first}"><button '
                   f'type="button">{e(label)}</button></th>')
    for task in tasks:
        hidden = "" if task["public"] else " (hidden)"
        overridden = task.get("xares_disabled_overridden") is True
        custom = task.get("custom") is True
        note = (f"; {OVERRIDE_TEXT}" if overridden else "") + (f"; {CUSTOM_TEXT}" if custom else "")
        out.append(f'<th class="task" data-key="task:{e(task["task"])}" data-type="num" data-first="desc" '
                   f'title="{e(task["formal_name"])}: {e(task["metric"])}, weight {task["weight"]}{hidden}{e(note)}">'
                   f'<button type="button">{e(task["task"])}{"" if task["public"] else _HIDDEN_MARK}'
                   f'{_OVERRIDE_MARK if overridden else ""}{_CUSTOM_MARK if custom else ""}</button></th>')
    out.append("</tr></thead><tbody>")
    for order, row in enumerate(board["rows"]):
        classes = ["row", row["status"]] + (["reference"] if row["reference"] else [])
        if row["tie_group"] is not None:
            classes.append("tied")
        out.append(f'<tr class="{" ".join(classes)}" data-order="{order}" data-name="{e(row["name"])}">')
        out.append(_rank_cell(row))
        out.append(_name_cell(row))
        score_title = f"unrounded {_num(row['score'], 6)}; counted weight {row['counted_weight']}"
        if row["status"] == "incomplete":
            score_title += "; provisional (incomplete: not ranked)"
        interval = row["bootstrap"]["interval"]
        if interval is not None:
            score_title += f"; 95 % bootstrap interval [{_num(interval[0], 6)}, {_num(interval[1], 6)}]"
        elif row["bootstrap"]["reason"]:
            score_title += f"; no interval: {row['bootstrap']['reason']}"
        ci = f'<span class="ci" data-interval="1">{_interval_text(interval)}</span>' if interval else ""
        out.append(f'<td class="score" data-v="{_sortval(row["score"])}" title="{e(score_title)}"><b>'
                   f'{display(row["score"])}</b>{ci}</td>')
        if spread:
            se = "" if row["score_se"] is None else PLUS_MINUS + " " + display(row["score_se"])
            out.append(f'<td class="se" data-v="{_sortval(row["score_se"])}">{se}</td>')
        out.append(f'<td class="public" data-v="{_sortval(row["score_public"])}">{display(row["score_public"])}</td>')
        out.append(_published_cell(row))
        out.append(f'<td class="status" data-v="{e(row["status"])}">{e(row["status"])}</td>')
        out.append(f'<td class="version" data-v="{e(_version_text(row))}">{e(_version_text(row))}</td>')
        for task in tasks:
            out.append(_task_cell(row["cells"].get(task["task"]), task, policy))
        out.append("</tr>")
    out.append("</tbody></table></div>")
    return "".join(out)


def _chart(board: dict) -> str:
    """A horizontal bar per row with a score, 0..1; Track A whiskers at +-2 SE; published values as ticks."""
    rows = [r for r in board["rows"] if r["score"] is not None]
    if not rows:
        return '<p class="meta">No scores to chart.</p>'
    label_w, bar_w, value_w, bar_h, gap, top = 230, 560, 120, 18, 6, 22
    width = label_w + bar_w + value_w
    height = top + len(rows) * (bar_h + gap) + 8
    colours = {"verified": "#2f81f7", "unsigned": "#d4a72c", "reference": "#8c959f"}
    parts = [f'<svg class="chart" id="chart-{board["track"]}" role="img" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg">'
             f'<title>{e(board["title"])}: score per row (0 to 1)</title>']
    for tick in range(0, 11, 2):
        x = label_w + bar_w * tick / 10
        parts.append(f'<line class="axis" x1="{x:.1f}" y1="{top - 6}" x2="{x:.1f}" y2="{height - 4}"/>'
                     f'<text x="{x:.1f}" y="{top - 9}" text-anchor="middle">{tick / 10:.1f}</text>')
    for i, row in enumerate(rows):
        y = top + i * (bar_h + gap)
        score = max(0.0, min(1.0, row["score"]))
        name = row["name"] if len(row["name"]) <= 30 else row["name"][:29] + "\u2026"
        rank = f'={row["rank"]}' if row["tie_group"] else (str(row["rank"]) if row["rank"] else "\u2013")
        opacity = "0.45" if row["status"] == "incomplete" else "1"
        parts.append(f'<g class="bar" data-name="{e(row["name"])}"><title>{e(row["name"])}: {e(row["score_display"])}'
                     f' ({e(row["provenance_label"])}, {e(row["status"])})</title>'
                     f'<text x="{label_w - 8}" y="{y + bar_h - 5}" text-anchor="end">{e(rank)}  {e(name)}</text>'
                     f'<rect x="{label_w}" y="{y}" width="{bar_w * score:.1f}" height="{bar_h}" rx="2" '
                     f'fill="{colours[row["provenance"]]}" fill-opacity="{opacity}"/>')
        interval = row["bootstrap"]["interval"]
        if interval is not None or row["score_se"]:
            if interval is not None:
                low, high = max(0.0, interval[0]), min(1.0, interval[1])
            else:
                low = max(0.0, score - 2 * row["score_se"])
                high = min(1.0, score + 2 * row["score_se"])
            cy = y + bar_h / 2
            parts.append(f'<line x1="{label_w + bar_w * low:.1f}" y1="{cy}" x2="{label_w + bar_w * high:.1f}" '
                         f'y2="{cy}" stroke="#1b1f24" stroke-width="1.5"/>')
        if row["published"] is not None:
            px = label_w + bar_w * max(0.0, min(1.0, float(row["published"])))
            colour = "#1a7f37" if row["published_matches"] else "#cf222e"
            parts.append(f'<line x1="{px:.1f}" y1="{y - 2}" x2="{px:.1f}" y2="{y + bar_h + 2}" stroke="{colour}" '
                         f'stroke-width="3"><title>published {e(row["published"])}</title></line>')
        parts.append(f'<text x="{label_w + bar_w * score + 6:.1f}" y="{y + bar_h - 5}">{e(row["score_display"])}'
                     f'</text></g>')
    parts.append("</svg>")
    return "".join(parts)


def _blob_plot(board: dict, resamples: int) -> str:
    """challengeR's blob plot: per row (ranked order) a disc at every rank it took in the resamples,
    its area proportional to how often; the median rank as a black tick, the 95 % rank interval as a
    black line, the leaderboard's rank as a hollow square."""
    rows = [r for r in board["rows"] if r["bootstrap"]["rank_counts"]]
    if not rows:
        return ""
    missing = [r for r in board["rows"] if r["rank"] is not None and not r["bootstrap"]["rank_counts"]]
    ranks = len(rows[0]["bootstrap"]["rank_counts"])
    label_w, top, row_h = 230, 34, 28
    cell_w = max(14, min(40, 560 // max(1, ranks)))
    width = label_w + cell_w * ranks + 20
    height = top + len(rows) * row_h + 8
    radius = min(cell_w, row_h) / 2 - 2
    colours = {"verified": "#2f81f7", "unsigned": "#d4a72c", "reference": "#8c959f"}
    parts = [f'<svg class="chart blob" id="blob-{board["track"]}" role="img" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg">'
             f'<title>{e(board["title"])}: rank stability over {resamples} bootstrap resamples</title>'
             f'<text x="{label_w - 8}" y="{top - 20}" text-anchor="end">rank \u2192</text>']
    step = 1 if ranks <= 20 else 5
    for rank in range(1, ranks + 1):
        x = label_w + cell_w * (rank - 0.5)
        parts.append(f'<line class="axis" x1="{x:.1f}" y1="{top - 6}" x2="{x:.1f}" y2="{height - 4}"/>')
        if rank == 1 or rank % step == 0:
            parts.append(f'<text x="{x:.1f}" y="{top - 10}" text-anchor="middle">{rank}</text>')
    for i, row in enumerate(rows):
        boot = row["bootstrap"]
        cy = top + i * row_h + row_h / 2
        total = sum(boot["rank_counts"]) or 1
        name = row["name"] if len(row["name"]) <= 30 else row["name"][:29] + "\u2026"
        parts.append(f'<g class="blobrow" data-name="{e(row["name"])}"><text x="{label_w - 8}" y="{cy + 4:.1f}" '
                     f'text-anchor="end">{e(name)}</text>')
        low, high = boot["rank_interval"]
        x1, x2 = label_w + cell_w * (low - 0.5), label_w + cell_w * (high - 0.5)
        parts.append(f'<line x1="{x1:.1f}" y1="{cy:.1f}" x2="{x2:.1f}" y2="{cy:.1f}" stroke="#1b1f24" '
                     f'stroke-width="1.5"><title>95 % rank interval {low}\u2013{high}</title></line>')
        for rank, count in enumerate(boot["rank_counts"], start=1):
            if not count:
                continue
            share = count / total
            parts.append(f'<circle class="blob" cx="{label_w + cell_w * (rank - 0.5):.1f}" cy="{cy:.1f}" '
                         f'r="{max(1.2, radius * share ** 0.5):.2f}" fill="{colours[row["provenance"]]}" '
                         f'fill-opacity="0.75" data-rank="{rank}" data-share="{share:.4f}"><title>{e(row["name"])}: '
                         f'rank {rank} in {100 * share:.1f} % of resamples</title></circle>')
        xm = label_w + cell_w * (boot["rank_median"] - 0.5)
        parts.append(f'<line x1="{xm:.1f}" y1="{cy - radius - 1:.1f}" x2="{xm:.1f}" y2="{cy + radius + 3:.1f}" '
                     f'stroke="#1b1f24" stroke-width="2"><title>median rank {boot["rank_median"]:g}</title></line>')
        if row["rank"] is not None:
            xr = label_w + cell_w * (row["rank"] - 0.5)
            parts.append(f'<rect x="{xr - 4:.1f}" y="{cy - 4:.1f}" width="8" height="8" fill="none" '
                         f'stroke="#cf222e" stroke-width="1.5"><title>leaderboard rank {row["rank"]}</title></rect>')
        parts.append("</g>")
    parts.append("</svg>")
    note = ""
    if missing:
        note = ('<p class="meta">Not in the plot (no per-clip data; ranked by the plain rule, held at their score in '
                "every resample): " + ", ".join(f"{e(r['name'])} ({e(r['bootstrap']['reason'] or '')})"
                                                for r in missing) + "</p>")
    return (f'<h3>Rank stability ({resamples} bootstrap resamples)</h3><p class="meta">Per row, a disc at each rank '
            "it took, its area the share of resamples; black tick: median rank; black line: 95 % rank interval; "
            f'red square: the leaderboard\'s rank.</p><div class="scroll">{"".join(parts)}</div>{note}')


def _list(items: Iterable[str]) -> str:
    return "".join(f"<li>{e(i)}</li>" for i in items)


def _rules(doc: dict) -> str:
    rules, task_set = doc["rules"], doc["task_set"]
    weights = []
    for track in ("A", "B"):
        board = doc["tracks"][track]
        listing = ", ".join(f"{t['task']} {t['weight']}" + ("" if t["public"] else DAGGER) for t in board["tasks"])
        weights.append(f"Track {track} ({len(board['tasks'])} tasks, total weight {board['total_weight']}, public "
                       f"{board['public_weight']}): {listing or 'none'}")
    left = [f"Track {lo['track']}: {lo['task']}: {lo['reason']}" for lo in task_set["left_out"]]
    overridden = sorted({t["task"] for track in ("A", "B") for t in doc["tracks"][track]["tasks"]
                         if t.get("xares_disabled_overridden")})
    custom = {t["task"]: t for track in ("A", "B") for t in doc["tracks"][track]["tasks"] if t.get("custom")}
    return (
        '<section id="rules"><h2>Rules applied</h2><ul class="rules">'
        f"<li><b>Task set</b>: <code>{e(task_set['name'])}</code>: {e(task_set['description'])} "
        f"(source: {e(task_set['source'])})</li>"
        f"<li><b>Weights</b> (X-ARES eval_weight; \u2020 hidden):<ul>{_list(weights)}</ul></li>"
        + (f"<li><b>Left out</b> (cannot enter the formula):<ul>{_list(left)}</ul></li>" if left else "")
        + (f"<li><b>Disabled in X-ARES 0.1.3, scored anyway</b> (marked <span class=\"override-mark\">X-ARES off</span>"
           f" and <sup>*</sup>): {e(', '.join(overridden))}. Only xares.run's worker reads the flag; the harness "
           "calls XaresTask, which ignores it, and the organizers scored these tasks in 2025.</li>"
           if overridden else "")
        + ("<li><b>Custom tasks</b> (marked <span class=\"custom-mark\">custom</span>: scored from the organizer's "
           "own task files, not in the registry): weight from each task's own TaskConfig.eval_weight, worst and best "
           "from its metric's natural range (paper section 4.1): "
           + e(", ".join(f"{n} ({t['metric']}, weight {t['weight']}, worst {t['worst']:g}, best {t['best']:g})"
                         for n, t in sorted(custom.items()))) + "</li>" if custom else "")
        + f"<li><b>Normalisation</b>: {e(rules['normalisation'])}</li>"
        f"<li><b>Average</b>: {e(rules['average'])}</li>"
        f"<li><b>Clamping</b>: {e(rules['clamp'])}</li>"
        f"<li><b>Missing tasks</b> (<code>--missing {e(rules['missing_policy'])}</code>): {e(rules['missing'])}</li>"
        f"<li><b>Infrastructure errors</b>: {e(rules['error'])}</li>"
        f"<li><b>Track A spread</b>: {e(rules['spread'])}</li>"
        + (f"<li><b>Bootstrap</b>: {doc['bootstrap']['resamples']} resamples, seed {doc['bootstrap']['seed']}, "
           f"{100 * doc['bootstrap']['level']:g} % intervals: {e(doc['bootstrap']['method'])}. Rows without per-clip "
           "data show no interval and say why.</li>" if doc["bootstrap"]["resamples"] else
           "<li><b>Bootstrap</b>: off (--bootstrap 0): no intervals; the plain tie rule.</li>")
        + f"<li><b>Ties, Track A</b>: {e(rules['tie']['A'])}</li>"
        f"<li><b>Ties, Track B</b>: {e(rules['tie']['B'])}</li>"
        f"<li><b>Published values</b>: {e(rules['published'])}</li>"
        f"<li><b>Verification</b>: {e(rules['verification'])}</li>"
        f"<li><b>Formula version</b> <code>{e(doc['formula_version'])}</code>; scores shown with "
        f"{rules['precision']} decimals, ranked unrounded.</li>"
        "</ul></section>"
    )


def _rejected(doc: dict) -> str:
    rows = doc["rejected"]
    if not rows:
        return '<section id="rejected"><h2>Rejected results</h2><p class="meta">None.</p></section>'
    body = "".join(
        f'<tr><td><code>{e(r["source"])}</code></td><td class="mismatch">{e(r["problem"])}'
        f'{(" / " + e(r["detail"])) if r["detail"] else ""}</td><td>{e(r["message"])}</td></tr>' for r in rows)
    return (f'<section id="rejected"><h2>Rejected results ({len(rows)}): never ranked</h2>'
            f'<table class="plain"><thead><tr><th>File</th><th>Problem</th><th>Reason</th></tr></thead>'
            f"<tbody>{body}</tbody></table></section>")


def _submissions(doc: dict) -> str:
    if not doc["submissions"]:
        return ""
    body = "".join(
        f'<tr><td>{e(s["name"])}</td><td><a href="{e(s["link"])}"><code>{e(s["sha256"][:16])}\u2026</code></a></td>'
        f'<td>{e(s["provenance"])}</td><td><code>{e((s["lock_sha256"] or "")[:16])}</code></td>'
        f'<td>{e(s["xares"])}</td><td>{e(s["harness"])} <code>{e((s["harness_commit"] or "")[:12])}</code></td></tr>'
        for s in doc["submissions"])
    return ('<section id="submissions"><h2>Submissions</h2><table class="plain"><thead><tr><th>Name</th>'
            '<th>Signed result</th><th>Provenance</th><th>Lock digest</th><th>X-ARES</th><th>Harness</th></tr>'
            f"</thead><tbody>{body}</tbody></table></section>")


def render_page(doc: dict) -> str:
    """The whole page as one string."""
    policy = doc["rules"]["missing_policy"]
    key = doc["verification"]["public_key_id"]
    tracks = []
    for track in ("A", "B"):
        board = doc["tracks"][track]
        tasks = len(board["tasks"])
        legend = ('<div class="legend"><span>heat map: normalised value <span class="swatch"></span> 0 \u2192 1</span>'
                  '<span><span class="tie">=N</span> tie group (see the tie rule)</span>'
                  '<span class="mismatch">\u26a0 published \u2260 recomputed</span>'
                  '<span><span class="hidden-mark">hidden</span>: a hidden dataset (\u2020 in the paper)</span>'
                  '<span><span class="override-mark">X-ARES off</span>, <sup>*</sup>: disabled in X-ARES 0.1.3, '
                  'scored anyway</span>'
                  '<span><span class="custom-mark">custom</span>: not a registry task (its own weight, its '
                  'metric\'s natural bounds)</span>'
                  '<span>[low, high]: 95 % bootstrap interval; [a\u2013b] beside a rank: its 95 % interval</span>'
                  '<span>hover a cell for its raw value</span></div>')
        tracks.append(
            f'<section id="track-{track}"><h2>{e(board["title"])}</h2>'
            f'<p class="meta">{len(board["rows"])} rows over {tasks} tasks (total weight {board["total_weight"]}). '
            f'Tie rule: {e(board["tie_rule"])}.</p>'
            + _chart(board) + legend + _table(board, policy)
            + _blob_plot(board, doc["bootstrap"]["resamples"]) + "</section>")
    warnings = doc["warnings"]
    warn = (f'<details class="warnings" open><summary>{len(warnings)} warning(s)</summary><ul>{_list(warnings)}</ul>'
            "</details>") if warnings else ""
    return (
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        "<title>AECC leaderboards</title>"
        f"<style>{_CSS}</style></head><body>"
        "<header><h1>ICME 2025 Audio Encoder Capability Challenge: leaderboards</h1>"
        f'<p class="meta">Task set <b>{e(doc["task_set"]["name"])}</b> \u00b7 missing tasks: <b>{e(policy)}</b> '
        f'\u00b7 formula <code>{e(doc["formula_version"])}</code> \u00b7 harness {e(doc["harness"]["version"])} '
        f'<code>{e(doc["harness"]["commit"][:12])}</code> \u00b7 X-ARES {e(doc["xares"]["registry"])} (registry)'
        + (f', results: {e(", ".join(doc["xares"]["results"]))}' if doc["xares"]["results"] else "")
        + f' \u00b7 key <code>{e((key or "none")[:16])}</code> \u00b7 generated {e(doc["generated_at"])}</p>'
        '<nav><a href="#track-A">Track A</a><a href="#track-B">Track B</a><a href="#rules">Rules</a>'
        '<a href="#rejected">Rejected</a><a href="#submissions">Submissions</a>'
        '<a href="leaderboard.json">leaderboard.json</a><a href="leaderboard-A.csv">A.csv</a>'
        '<a href="leaderboard-B.csv">B.csv</a></nav></header>'
        + warn + "".join(tracks) + _rules(doc) + _rejected(doc) + _submissions(doc)
        + '<footer>Static page: no network is used to show it. Scores are the paper\'s equation (2) over '
        "normalised metrics; every row links to its signed result (results/&lt;sha256&gt;/result.dsse.json), "
        "which <code>aecc verify</code> checks offline.</footer>"
        f"<script>{_JS}</script></body></html>\n"
    )
