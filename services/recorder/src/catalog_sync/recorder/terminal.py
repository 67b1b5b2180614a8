"""`catalog-sync status` output: the activity register and the item table as readable text."""

from __future__ import annotations


def _short_time(iso: str | None) -> str:
    return iso.replace("T", " ")[:19] if iso else "-"


def _table(headers: list[str], rows: list[list[str]], width: int) -> list[str]:
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(cell)) for w, cell in zip(widths, row, strict=True)]
    # The last column (message) takes what is left of the terminal; the others stay whole.
    room = max(20, width - sum(widths[:-1]) - 2 * (len(widths) - 1))
    widths[-1] = min(widths[-1], room)

    def line(cells: list[str]) -> str:
        cells = [c if len(c) <= w else c[: max(1, w - 1)] + "…" for c, w in zip(cells, widths, strict=True)]
        return "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()

    return [line(headers), line(["-" * w for w in widths])] + [line(r) for r in rows]


def _run_line(run: dict) -> str:
    c = run["counts"]
    return (f"{run['run_id']}  {run['status']}  mode {run['mode'] or '-'} ({run['endpoint'] or '-'})  "
            f"started {_short_time(run['started_at'])}  finished {_short_time(run['finished_at'])}  "
            f"{c['total']} items: {c['finished']} finished, {c['error']} error, {c['pending']} pending")


# Amazon's view of an accepted listing, after the item's status (the submitter looks again after ACCEPTED).
LISTING_WORDS = {"awaiting": "accepted, awaiting Amazon", "live": "live", "error": "turned down after acceptance"}


def _status(item: dict) -> str:
    state = item.get("listing_state")
    if not state or state == "error":  # an error says so, with its message in the ERROR column
        return item["status"]
    return f"{item['status']} ({LISTING_WORDS.get(state, state)})"


def render_status(activity: dict, runs: list[dict], items: dict, width: int | None = None) -> str:
    """`width`: terminal columns the error column is cut to; None keeps whole lines (pipes, files)."""
    width = width or 1_000_000
    out = ["Activity"]
    current, last = activity["current_run"], activity["last_run"]
    out.append(f"  sync running: {'yes' if activity['in_progress'] else 'no'}")
    out.append(f"  current run:  {_run_line(current) if current else '-'}")
    out.append(f"  last run:     {_run_line(last) if last else '-'}")
    if activity.get("missed_run_at"):
        out.append(f"  next run at:  none (a run announced for {_short_time(activity['missed_run_at'])} UTC never "
                   "started: is the scheduler running?)")
    else:
        out.append(f"  next run at:  {_short_time(activity['next_run_at'])}")
    if runs:
        out += ["", "Runs (newest first)"] + [f"  {_run_line(r)}" for r in runs]
    s = items["summary"]
    scope = f"run {items['run_id']}" if items.get("run_id") else "all runs"
    out += ["", f"Items ({scope}): {s['total']} total, {s['finished']} finished, {s['error']} error, "
                f"{s['pending']} pending"]
    rows = []
    for item in items["items"]:
        error = item["error"]
        rows.append([
            item["reference"], item["item_type"], item["marketplace_id"], _status(item),
            _short_time(item["synced_at"]),
            (item["request_id"] or "-") + (f" (feed {item['feed_id']}, message {item['feed_message_id']})"
                                           if item.get("feed_id") else ""),
            f"{error['type']} {error['code'] or ''}: {error['message']}" if error else (item.get("listing_note") or ""),
        ])
    if rows:
        out += _table(["REFERENCE", "TYPE", "MARKETPLACE", "STATUS", "SYNCED (UTC)", "REQUEST ID", "ERROR OR NOTE"], rows,
                      width)
    else:
        out.append("  no items match")
    if items["next_cursor"]:
        out.append(f"more: --cursor {items['next_cursor']}")
    return "\n".join(out)
