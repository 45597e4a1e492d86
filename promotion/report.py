"""Promotion results for people: one line per gate for the terminal, a Markdown report for CI.

Example::

    result = promote(uri, "tiny", 2, "production", on_gate=lambda g: print(gate_line(g)))
    Path("promotion.md").write_text(markdown_report(result))
"""

from __future__ import annotations

from rich.markup import escape

from latentserve.promotion.gates import GateResult
from latentserve.promotion.promote import EXIT_ERROR, PromotionResult

_STYLE = {"pass": "green", "fail": "bold red", "skip": "yellow"}
_MARK = {"pass": "✅ pass", "fail": "❌ fail", "skip": "⏭️ skip"}


def summary(result: PromotionResult) -> str:
    """One line: what happened to the alias and why."""
    target = f"{result.name} v{result.version}"
    if result.outcome == "already-holds":
        return f"{target} already holds {result.alias}; nothing to do"
    if result.outcome == "promoted":
        before = "unset" if result.previous is None else f"v{result.previous}"
        return f"promoted {target} to {result.alias} (was {before})"
    failed = ", ".join(g.name for g in result.failed)
    if result.outcome == "dry-run":
        verdict = "all gates pass" if result.passed else f"gates failed: {failed}"
        return f"dry run for {target} → {result.alias}: {verdict}; nothing was changed"
    return f"{target} was not promoted to {result.alias}: gates failed: {failed}"


def gate_line(gate: GateResult, *, explain: bool = False) -> str:
    """One line for a decided gate (rich markup): outcome, name, value, and why it failed;
    `explain` adds, for every outcome, the gates-file keys that decide it and why."""
    line = f"[{_STYLE[gate.outcome]}]{gate.outcome:>4}[/] {escape(gate.name)}: {escape(gate.value)}"
    if explain:
        if gate.key:
            line += f" [dim]({escape(gate.key)})[/]"
        if gate.detail:
            line += f" — {escape(gate.detail)}"
    elif gate.outcome == "fail" and gate.detail:
        line += f" — {escape(gate.detail)}"
    return line


def idle_rule_line(key: str) -> str:
    """`promote --explain`'s line for a `[[metrics]]` rule no metric of either version
    matched (rich markup)."""
    return (f"[{_STYLE['skip']}]skip[/] {escape(key)}: no metric of the candidate or the "
            "holder matches it; not applied")


def markdown_report(result: PromotionResult) -> str:
    """The promotion as a Markdown document (title, outcome, one table row per gate)."""
    holder = "none (absolute thresholds)" if result.holder is None else f"v{result.holder}"
    previous = "unset" if result.previous is None else f"v{result.previous}"
    lines = [
        f"# Promotion: {result.name} v{result.version} → `{result.alias}`",
        "",
        f"**{result.outcome}** (exit code {result.exit_code}): {summary(result)}",
        "",
        f"- when: {result.at}",
        f"- registry: `{result.registry_uri}`",
        f"- baseline: `{result.baseline_alias}` → {holder}",
        f"- `{result.alias}` before: {previous}",
        "",
    ]
    if result.gates:
        lines += ["| gate | result | value | gates-file key | detail |", "|---|---|---|---|---|"]
        lines += [f"| `{g.name}` | {_MARK[g.outcome]} | {_cell(g.value)} | {_cell(g.key)} | "
                  f"{_cell(g.detail)} |" for g in result.gates]
        lines.append("")
    return "\n".join(lines)


def error_report(name: str, version: int | None, alias: str, message: str) -> str:
    """A Markdown report for a promotion that could not run (infrastructure/usage error)."""
    target = f"{name} v{version}" if version is not None else name
    return (f"# Promotion: {target} → `{alias}`\n\n**error** (exit code {EXIT_ERROR}): the "
            f"gates could not run and nothing was changed.\n\n```\n{message}\n```\n")


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")
