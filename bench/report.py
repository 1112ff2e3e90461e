"""`make bench`'s one table: every figure of every benchmark, its baseline, the ratio and the goal.

Run last (the Makefile's bench target). It reads the "figures" list of every bench/results/*.json
(latest.json aside), prints them in one table and writes the same to bench/results/latest.json.
Each benchmark writes its own file; a figure is

    {"name", "value", "unit", "baseline_name", "baseline", "ratio", "goal", "met"}

(`value` a number or a short text; `ratio` = value ÷ baseline, or null; `goal` a short text, or
null for a figure only reported; `met` true, false or null).
The sources are listed with when each ran and its load average: a file left by an earlier run of a
script shows its own date.
"""

import datetime
import json
import os
import sys
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
LATEST = RESULTS / "latest.json"


def _text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:,.3f}".rstrip("0").rstrip(".") if abs(value) < 10 else f"{value:,.1f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _row(figure: dict) -> list[str]:
    baseline = ""
    if figure.get("baseline") is not None or figure.get("baseline_name"):
        baseline = f"{figure.get('baseline_name') or ''}: {_text(figure.get('baseline'))}".strip(": ")
    met = {True: "met", False: "NOT met", None: ""}[figure.get("met")]
    return [figure["name"], f"{_text(figure['value'])} {figure.get('unit') or ''}".strip(), baseline,
            _text(figure.get("ratio")), figure.get("goal") or "", met]


def print_table(figures: list[dict], *, title: str = "", loadavg=None) -> None:
    """The figures as a table on stdout (each benchmark prints its own this way; `make bench` all of them)."""
    header = ["figure", "value", "baseline", "ratio", "goal", ""]
    rows = [_row(f) for f in figures]
    widths = [min(max(len(r[i]) for r in [header, *rows]), cap) for i, cap in enumerate((64, 18, 44, 7, 34, 7))]
    if title:
        print(f"\n{title}")
    print("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip())
    print("  ".join("-" * w for w in widths))
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    if loadavg is not None:
        print(f"load average (1, 5, 15 min): {loadavg} on {os.cpu_count()} CPUs")


def collect() -> list[dict]:
    """Every results file with figures, oldest first: {"source", "when", "loadavg", "figures"}."""
    found = []
    for path in sorted(RESULTS.glob("*.json")):
        if path == LATEST:
            continue
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError) as error:
            print(f"skipped {path.name}: {error}", file=sys.stderr)
            continue
        if isinstance(data, dict) and isinstance(data.get("figures"), list):
            found.append({"source": path.name, "when": data.get("when", ""), "loadavg": data.get("loadavg"),
                          "figures": data["figures"]})
    return found


def main() -> int:
    sources = collect()
    if not sources:
        print(f"no figures in {RESULTS}/*.json: run the benchmarks first (make bench)", file=sys.stderr)
        return 1
    figures = [{**figure, "source": source["source"]} for source in sources for figure in source["figures"]]
    print_table(figures, title="make bench: every figure")
    print("\nsources (file, when, load average):")
    for source in sources:
        print(f"  {source['source']:<22} {source['when']:<27} {source['loadavg']}")
    missed = [f["name"] for f in figures if f.get("met") is False]
    print(f"\n{sum(f.get('met') is True for f in figures)} goals met, {len(missed)} not met"
          + (f": {'; '.join(missed)}" if missed else ""))
    LATEST.write_text(json.dumps({"when": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
                                  "loadavg": [round(x, 2) for x in os.getloadavg()], "sources": [
                                      {k: v for k, v in s.items() if k != "figures"} for s in sources],
                                  "figures": figures}, indent=2) + "\n")
    print(f"written: {LATEST}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
