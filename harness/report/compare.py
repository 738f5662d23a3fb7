"""`tinyhil compare BASELINE CURRENT`: line up two runs and say what changed; with
`--fail-on` rules, a regression gate for nightly CI.

Figures are lined up on (board, backend, model, variant, metric, statistic). Only like is
compared with like: when the two sides differ in fidelity, or the board's firmware toolchain
(its compiler version, from the run manifests) changed, the pair is reported, not compared,
and no rule applies to it.

Rules: METRIC[.STATISTIC]:CHANGE, e.g. latency_us:+5% (fail when latency grew by more than
5 %), accuracy:-0.5pp (fail when accuracy fell by more than 0.5 percentage points),
flash_bytes:+1024 (fail when it grew by more than 1024 of its unit). Without a statistic a
rule applies to the metric's main figure (value, else median, else mean).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from harness.report import metrics
from harness.errors import HarnessError
from harness.report.table import KEY, STAT_PREFERENCE, find_run_dirs, load_runs
from harness.results.records import read_manifest

FIGURE = [*KEY, "metric", "statistic"]
RULE = re.compile(r"^(?P<metric>[A-Za-z0-9_]+)(?:\.(?P<stat>[a-z0-9]+))?:"
                  r"(?P<sign>[+-])(?P<amount>\d+(?:\.\d+)?)(?P<kind>%|pp)?$")


class CompareError(HarnessError):
    """A rule that cannot be read, or runs that cannot be compared."""


@dataclass(frozen=True)
class Rule:
    text: str
    metric: str
    statistic: str | None
    direction: int          # +1: an increase beyond the amount fails; -1: a decrease
    amount: float
    kind: str               # "%" relative, "pp" percentage points, "" absolute (the unit)

    def breached(self, baseline: float, current: float) -> bool:
        delta = (current - baseline) * self.direction
        if self.kind == "%":
            if baseline == 0:
                return delta > 0
            return delta / abs(baseline) * 100 > self.amount + 1e-12
        return delta > self.amount + 1e-12


def parse_rule(text: str) -> Rule:
    match = RULE.match(text.strip())
    if not match:
        raise CompareError(f"--fail-on {text!r} is not a rule: write METRIC[.STATISTIC]:CHANGE, "
                           "e.g. latency_us:+5% (relative), accuracy:-0.5pp (percentage points) "
                           "or flash_bytes:+1024 (in the metric's unit)")
    return Rule(text.strip(), match["metric"], match["stat"], 1 if match["sign"] == "+" else -1,
                float(match["amount"]), match["kind"] or "")


def _toolchains(paths: list[Path]) -> dict[str, dict]:
    """run_id -> the tool versions its manifest recorded."""
    out = {}
    for path in paths:
        for run_dir in find_run_dirs(path):
            manifest = read_manifest(run_dir) or {}
            out[manifest.get("run_id", run_dir.name)] = manifest.get("tools") or {}
    return out


def _figures(paths: list[Path]) -> pd.DataFrame:
    df = metrics.device_figures_only(load_runs(paths))
    df = df.assign(_time=pd.to_datetime(df["time"], utc=True, format="ISO8601"))
    df = df.sort_values("_time").drop_duplicates(FIGURE, keep="last")
    return df[[*FIGURE, "value", "unit", "fidelity", "run_id"]].reset_index(drop=True)


def _toolchain_of(board: str, run_id: str, tools: dict[str, dict], catalogue) -> str | None:
    board_def = catalogue.get(board)
    if board_def is None:
        return None
    return (tools.get(run_id) or {}).get(board_def.toolchain)


def compare_runs(baseline: list[Path], current: list[Path]) -> pd.DataFrame:
    """One row per figure of either side: baseline, current, change, and whether the pair is
    comparable (status: compared, fidelity differs, toolchain differs, only in baseline, only
    in current)."""
    from harness.boards import load_catalogue

    base, cur = _figures(baseline), _figures(current)
    merged = base.merge(cur, on=FIGURE, how="outer", suffixes=("_base", "_cur"), indicator="side")
    catalogue = load_catalogue()
    tools = _toolchains(baseline) | _toolchains(current)
    statuses, notes = [], []
    for row in merged.itertuples(index=False):
        if row.side == "left_only":
            statuses.append("only in baseline"), notes.append("")
            continue
        if row.side == "right_only":
            statuses.append("only in current"), notes.append("")
            continue
        if row.fidelity_base != row.fidelity_cur:
            statuses.append("not compared")
            notes.append(f"fidelity {row.fidelity_base} -> {row.fidelity_cur}")
            continue
        before = _toolchain_of(row.board, row.run_id_base, tools, catalogue)
        after = _toolchain_of(row.board, row.run_id_cur, tools, catalogue)
        if before and after and before != after:
            statuses.append("not compared")
            notes.append(f"toolchain {before} -> {after}")
            continue
        statuses.append("compared"), notes.append("")
    merged["status"], merged["note"] = statuses, notes
    merged["unit"] = merged["unit_cur"].fillna(merged["unit_base"])
    merged["change"] = merged["value_cur"] - merged["value_base"]
    merged["change_pct"] = merged["change"] / merged["value_base"].abs() * 100
    merged.loc[merged["value_base"] == 0, "change_pct"] = math.nan
    return merged.drop(columns=["side", "unit_base", "unit_cur"]).sort_values(FIGURE, ignore_index=True)


def _main_statistic(stats: set[str]) -> str | None:
    for stat in STAT_PREFERENCE:
        if stat in stats:
            return stat
    return None


def breaching(table: pd.DataFrame, rules: list[Rule]):
    """(row index, row, rule) for each figure a rule fails."""
    compared = table[table["status"] == "compared"]
    for rule in rules:
        rows = compared[compared["metric"] == rule.metric]
        if rule.statistic:
            rows = rows[rows["statistic"] == rule.statistic]
        else:
            main = _main_statistic(set(table.loc[table["metric"] == rule.metric, "statistic"]))
            rows = rows[rows["statistic"] == main]
        for index, row in zip(rows.index, rows.itertuples(index=False)):
            if rule.breached(row.value_base, row.value_cur):
                yield index, row, rule


def breaches(table: pd.DataFrame, rules: list[Rule]) -> list[str]:
    """Each figure a rule fails, as a sentence naming the figure, both values and the rule."""
    found = []
    for _, row, rule in breaching(table, rules):
        change = (f"{row.change_pct:+.2f} %" if rule.kind == "%" and not math.isnan(row.change_pct)
                  else f"{row.change:+.4g} {'pp' if rule.kind == 'pp' else row.unit}")
        found.append(f"{row.board}/{row.backend}/{row.model}/{row.variant} {row.metric} "
                     f"{row.statistic}: {row.value_base:.6g} -> {row.value_cur:.6g} "
                     f"{row.unit} ({change}; {row.fidelity_cur}) breaks {rule.text}")
    return found


def compare_verdicts(table: pd.DataFrame, rules) -> pd.Series:
    """Per figure: 'regression: breaks RULE', 'improvement', 'worse (no rule broken)',
    'changed', 'unchanged', or the reason it was not compared."""
    broken: dict[int, list[str]] = {}
    for index, _, rule in breaching(table, rules):
        broken.setdefault(index, []).append(rule.text)
    out = []
    for index, row in table.iterrows():
        if row["status"] != "compared":
            out.append(row["status"] + (f" ({row['note']})" if row["note"] else ""))
        elif index in broken:
            out.append("regression: breaks " + ", ".join(broken[index]))
        elif row["change"] == 0:
            out.append("unchanged")
        else:
            column = metrics.column_for(row["metric"], row["statistic"])
            better = column.better if column else None
            if better is None:
                out.append("changed")
            else:
                improved = (row["change"] > 0) == (better == "higher")
                out.append("improvement" if improved else "worse (no rule broken)")
    return pd.Series(out, index=table.index, dtype=object)


def unmatched_rules(table: pd.DataFrame, rules: list[Rule]) -> list[str]:
    metrics = set(table["metric"])
    return [rule.text for rule in rules if rule.metric not in metrics]


def format_table(table: pd.DataFrame, show_all: bool = False) -> str:
    """What changed, as aligned text: changed or incomparable figures (every figure with
    show_all), then a count of the unchanged ones."""
    shown = table if show_all else table[(table["status"] != "compared") | (table["change"] != 0)]
    if shown.empty:
        return f"no figure changed ({len(table)} compared)"

    def num(value) -> str:
        return "" if pd.isna(value) else f"{value:.6g}"

    out = pd.DataFrame({
        "board": shown["board"], "backend": shown["backend"], "variant": shown["variant"],
        "metric": shown["metric"], "statistic": shown["statistic"],
        "baseline": shown["value_base"].map(num), "current": shown["value_cur"].map(num),
        "unit": shown["unit"], "change": shown["change"].map(lambda v: "" if pd.isna(v) else f"{v:+.4g}"),
        "change %": shown["change_pct"].map(lambda v: "" if pd.isna(v) else f"{v:+.2f}"),
        "fidelity": shown["fidelity_cur"].fillna(shown["fidelity_base"]),
        "status": (shown["status"] + shown["note"].map(lambda n: f" ({n})" if n else "")),
    })
    unchanged = int(((table["status"] == "compared") & (table["change"] == 0)).sum())
    text = out.to_string(index=False)
    return text + (f"\n{unchanged} figure(s) unchanged" if unchanged and not show_all else "")


def cmd_compare(args) -> int:
    rules = [parse_rule(text) for text in args.fail_on or []]
    if args.html and Path(args.html).is_dir():
        raise CompareError(f"--html {args.html} is a folder: give a file, e.g. "
                           f"{Path(args.html) / 'compare.html'}")
    table = compare_runs([Path(args.baseline)], [Path(args.current)])
    print(f"baseline {args.baseline}  ->  current {args.current}")
    print(format_table(table, args.all))
    skipped = table[table["status"] == "not compared"]
    if not skipped.empty:
        print(f"\n{len(skipped)} figure(s) not compared: measured with a different fidelity or "
              "firmware toolchain (see status)")
    for text in unmatched_rules(table, rules):
        print(f"warning: rule {text} matches no metric in either run")
    found = breaches(table, rules)
    for line in found:
        print(f"BREACH: {line}")
    if found:
        print(f"{len(found)} breach(es) of {', '.join(r.text for r in rules)}")
    if args.html:
        from harness.report.html import render_compare
        path = Path(args.html)
        path.parent.mkdir(parents=True, exist_ok=True)
        runs = (find_run_dirs(Path(args.baseline)), find_run_dirs(Path(args.current)))
        path.write_text(render_compare(table, compare_verdicts(table, rules), rules,
                                       Path(args.baseline), Path(args.current), runs,
                                       show_all=args.all),
                        encoding="utf-8")
        print(f"html: {path}")
    if rules and not found:
        print(f"no breach of {', '.join(r.text for r in rules)}")
    return 1 if found else 0


def add_parser(sub) -> None:
    parser = sub.add_parser("compare", help="what changed between two runs; a regression gate "
                                            "with --fail-on")
    parser.add_argument("baseline", help="the baseline run folder (e.g. the last good nightly)")
    parser.add_argument("current", help="the run folder to check")
    parser.add_argument("--fail-on", action="append", metavar="RULE",
                        help="exit 1 when a figure breaks the rule: latency_us:+5%%, "
                             "accuracy:-0.5pp, flash_bytes:+1024 (repeatable)")
    parser.add_argument("--all", action="store_true", help="show unchanged figures too")
    parser.add_argument("--html", metavar="FILE",
                        help="also write a self-contained HTML page: regressions and "
                             "improvements highlighted, with the rule each breaks")
    parser.set_defaults(fn=cmd_compare)
