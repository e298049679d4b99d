#!/usr/bin/env python3
"""Regenerate docs/reproduction.md's tables from the committed results, and its claims table.

    scripts/claims.py --doc FILE [--cli PROGRAM] [--work DIR]

For every spec repro/NAME.json whose results are committed (repro/results/NAME.jsonl.gz), the results
are unpacked into WORK/NAME/results.jsonl and `inputrep sweep --summarize WORK/NAME --doc FILE` rewrites
the table between <!-- sweep:NAME --> markers. Then every claim of repro/claims.json is evaluated
against those summaries (its rows are found by their config values in the summary tables, its rule
is an expression over their columns) and the verdict table and its counts are written between
<!-- claims --> and <!-- /claims -->. Nothing else in FILE changes. Standard library only.

Specs without committed results keep whatever table FILE holds; they are named in the claims
section, and the claims that need them count as not run.
"""
import argparse
import ast
import gzip
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COLUMNS = {  # summary.md column -> the name a rule uses
    "seeds": "seeds",
    "exact-token rate": "exact_tokens",
    "exact prompts": "exact_prompts",
    "distance": "distance",
    "distance / shifted": "distance_ratio",
    "tokens found, any order": "tokens_found",
    "masked tokens found": "masked_found",
    "masked tokens in place": "masked_in_place",
    "candidates checked": "candidates",
    "top-1, first seed and prompt": "top1",
}
LABELS = {v: k for k, v in COLUMNS.items()}
VERDICTS = ["reproduced", "differs, explained", "differs, unexplained", "not run", "needs weights or a GPU"]


class ClaimsError(Exception):
    pass


def cells(line):
    """The cells of a Markdown table line (| a | b |), with \\| kept as |."""
    parts = re.split(r"(?<!\\)\|", line.strip())[1:-1]
    return [p.strip().replace("\\|", "|") for p in parts]


def read_summary(path):
    """(config columns, rows) of the table in a summary.md; each row maps column -> cell text."""
    lines = open(path, encoding="utf-8").read().splitlines()
    for i, line in enumerate(lines):
        if line.startswith("|") and "| seeds |" in line:
            header = cells(line)
            rows = []
            for body in lines[i + 2:]:
                if not body.startswith("|"):
                    break
                rows.append(dict(zip(header, cells(body))))
            return header[:header.index("seeds")], rows
    raise ClaimsError(f"{path}: no table")


def render(value):
    """A spec value as the summary table shows it."""
    if value is None:
        return "–"
    if value is True:
        return "true"
    if isinstance(value, list):
        return "; ".join(render(v) for v in value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def number(text):
    if text == "–":
        return None
    m = re.match(r"^(-?[0-9.]+)( ± [0-9.]+)?$", text)
    return float(m.group(1)) if m else text


class Spec:
    def __init__(self, name, work):
        self.name = name
        folder = os.path.join(work, name)
        self.columns, self.rows = read_summary(os.path.join(folder, "summary.md"))
        self.configs = []
        with open(os.path.join(folder, "results.jsonl"), encoding="utf-8") as f:
            for line in f:
                if line.strip():
                    entry = json.loads(line)
                    self.configs.append(dict(entry["config"], claims=entry.get("claims")))

    def find(self, where, what):
        rows = self.rows
        for key, value in where.items():
            want = render(value)
            if key in self.columns:
                rows = [r for r in rows if r[key] == want]
            else:  # constant over the spec: every results line must agree
                have = {render(c.get(key)) if key != "claims" else "; ".join(map(str, c.get("claims") or []))
                        for c in self.configs}
                if have != {want}:
                    rows = []
        if len(rows) != 1:
            raise ClaimsError(f"{what}: {len(rows)} lines of the {self.name} table match {json.dumps(where, ensure_ascii=False)}")
        return {COLUMNS.get(k, k): number(v) if k in COLUMNS and k != "top-1, first seed and prompt" else v
                for k, v in rows[0].items()}


def evaluate(rule, rows, what):
    """The value of a rule (a Python expression of NAME.column, numbers, and/or/not, comparisons, + - * /,
    abs, min, max) and the row values it read."""
    used = {}

    def ev(node):
        if isinstance(node, ast.Expression):
            return ev(node.body)
        if isinstance(node, ast.BoolOp):
            vals = [ev(v) for v in node.values]
            return all(vals) if isinstance(node.op, ast.And) else any(vals)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.Not, ast.USub)):
            v = ev(node.operand)
            return (not v) if isinstance(node.op, ast.Not) else -v
        if isinstance(node, ast.Compare):
            left = ev(node.left)
            for op, right_node in zip(node.ops, node.comparators):
                right = ev(right_node)
                ok = {ast.Lt: left < right, ast.LtE: left <= right, ast.Gt: left > right, ast.GtE: left >= right,
                      ast.Eq: left == right, ast.NotEq: left != right}.get(type(op))
                if ok is None:
                    raise ClaimsError(f"{what}: operator not allowed in {rule!r}")
                if not ok:
                    return False
                left = right
            return True
        if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Sub, ast.Mult, ast.Div)):
            a, b = ev(node.left), ev(node.right)
            return {ast.Add: a + b, ast.Sub: a - b, ast.Mult: a * b}.get(type(node.op), a / b if b else float("inf"))
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("abs", "min", "max"):
            return {"abs": abs, "min": min, "max": max}[node.func.id](*[ev(a) for a in node.args])
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            name, column = node.value.id, node.attr
            if name not in rows:
                raise ClaimsError(f"{what}: {rule!r} names {name}, not one of its rows")
            if column not in LABELS:
                raise ClaimsError(f"{what}: {rule!r}: no column {column} (one of {', '.join(LABELS)})")
            value = rows[name].get(column)
            if not isinstance(value, float):
                raise ClaimsError(f"{what}: {name}.{column} is {value!r} in its table, not a number")
            used[f"{name}.{column}"] = value
            return value
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)):
            return node.value
        raise ClaimsError(f"{what}: {ast.dump(node)} not allowed in a rule ({rule!r})")

    try:
        tree = ast.parse(rule, mode="eval")
    except SyntaxError as e:
        raise ClaimsError(f"{what}: rule {rule!r}: {e}")
    return bool(ev(tree)), used


def describe_row(name, ref):
    where = ", ".join(f"{k} {render(v)}" for k, v in ref["where"].items())
    return f"{name} = `{ref['spec']}` ({where})"


def md(text):
    return str(text).replace("|", "\\|").replace("\n", " ")


def judge(claim, specs, missing):
    """(verdict class, verdict text, rows text, measured text) of one claim."""
    what = f"claim {claim['id']}"
    declared = claim["verdict"]
    refs = dict(claim.get("rows") or {})
    refs.update(claim.get("context") or {})
    absent = sorted({ref["spec"] for ref in refs.values() if ref["spec"] in missing})
    rows, seeds = {}, {}
    for name, ref in refs.items():
        if ref["spec"] in missing:
            continue
        if ref["spec"] not in specs:
            raise ClaimsError(f"{what}: no spec repro/{ref['spec']}.json")
        rows[name] = specs[ref["spec"]].find(ref["where"], f"{what}, row {name}")
        seeds[name] = int(rows[name]["seeds"])
    rows_text = "; ".join(describe_row(n, r) + (f" [{seeds[n]} seed{'s' * (seeds[n] != 1)}]" if n in seeds else "")
                          for n, r in refs.items()) or "none"
    note = f" ({claim['note']})" if claim.get("note") else ""
    measured = ""
    if declared == "needs weights or a GPU":
        if rows:
            measured = "context: " + "; ".join(
                f"{n}: " + ", ".join(f"{c} {rows[n][c]:.3f}" for c in ("exact_tokens", "masked_found")
                                     if isinstance(rows[n].get(c), float)) for n in rows)
        return declared, f"**needs weights or a GPU**: {claim['reason']}{note}", rows_text, measured
    if declared == "not run":
        return "not run", f"**not run**: {claim.get('reason', 'runnable, but no spec row runs it')}{note}", rows_text, measured
    if declared not in ("reproduced", "differs"):
        raise ClaimsError(f"{what}: verdict {declared!r} is not reproduced, differs, not run or needs weights or a GPU")
    if absent:
        return "not run", f"**not run**: the results of {', '.join('`%s`' % a for a in absent)} are not committed{note}", rows_text, measured
    if claim.get("mechanical") is False:
        raise ClaimsError(f"{what}: a rule read by hand is not supported; state it over the rows")
    holds, used = evaluate(claim["rule"], rows, what)
    explanation = claim.get("explanation")
    explained = None
    if explanation:
        explained, used2 = evaluate(explanation["rule"], rows, what + " (explanation)")
        used.update(used2)
    measured = ", ".join(f"{k} {v:.3f}" for k, v in used.items())
    few = [n for n in rows if seeds[n] < 3]
    if few:
        note += f" (fewer than 3 seeds: {', '.join(few)})"
    if not holds:
        return ("differs, unexplained",
                f"**differs, unexplained**: the rule does not hold (declared {declared}){note}", rows_text, measured)
    if declared == "reproduced":
        return "reproduced", f"**reproduced**{note}", rows_text, measured
    diff = claim.get("difference", "")
    if explanation and explained:
        return ("differs, explained",
                f"**differs, explained**: {diff}; explained by the rows: {explanation['text']} (`{explanation['rule']}`){note}",
                rows_text, measured)
    if explanation:
        return ("differs, unexplained",
                f"**differs, unexplained**: {diff}; the explanation's rule does not hold: {explanation['text']} (`{explanation['rule']}`){note}",
                rows_text, measured)
    return ("differs, unexplained",
            f"**differs, unexplained**: {diff}; unexplained: {claim.get('unexplained', 'no row measures an explanation')}{note}",
            rows_text, measured)


def claims_section(claims, specs, missing):
    counts = {v: 0 for v in VERDICTS}
    lines = []
    for claim in claims:
        kind, verdict, rows_text, measured = judge(claim, specs, missing)
        counts[kind] += 1
        rule = f"`{claim['rule']}`" if claim.get("rule") else "–"
        lines.append(f"| {claim['id']} | {md(claim['seed'])} | {md(rows_text)} | {md(rule)} | {md(measured) or '–'} | {md(verdict)} |")
    head = [
        f"Generated by `scripts/claims.py` from `repro/claims.json` ({len(claims)} claims) and the committed results "
        f"in `repro/results/`; do not edit by hand. Counts: "
        + ", ".join(f"**{k} {counts[k]}**" for k in VERDICTS) + ".",
        "",
    ]
    if missing:
        head += [f"Specs without committed results (their tables in the sections below are not checked, and the claims that need them "
                 f"count as not run): {', '.join('`%s`' % m for m in sorted(missing))}.", ""]
    head += ["| # | the seed (§9) | rows | rule | measured | verdict |", "|---|---|---|---|---|---|"]
    return "\n".join(head + lines), counts


def replace_section(text, start, end, body, path):
    a, b = text.find(start), text.find(end)
    if a < 0 or b < a:
        raise ClaimsError(f"{path} has no section {start} … {end}")
    return text[:a + len(start)] + "\n" + body + "\n" + text[b:]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--doc", required=True)
    parser.add_argument("--cli", default=os.environ.get("INPUTREP_CLI", os.path.join(REPO, "build/apps/inputrep/inputrep")))
    parser.add_argument("--work", help="where the results are unpacked (default: a temporary folder)")
    args = parser.parse_args()
    work = args.work or tempfile.mkdtemp(prefix="claims.")
    try:
        specs, missing = {}, set()
        for spec in sorted(os.listdir(os.path.join(REPO, "repro"))):
            if not spec.endswith(".json") or spec == "claims.json":
                continue
            name = spec[:-5]
            packed = os.path.join(REPO, "repro", "results", name + ".jsonl.gz")
            if not os.path.exists(packed):
                missing.add(name)
                continue
            folder = os.path.join(work, name)
            shutil.rmtree(folder, ignore_errors=True)
            os.makedirs(folder)
            with gzip.open(packed, "rb") as src, open(os.path.join(folder, "results.jsonl"), "wb") as dst:
                shutil.copyfileobj(src, dst)
            run = subprocess.run([args.cli, "sweep", "--summarize", folder, "--doc", args.doc],
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            if run.returncode != 0:
                raise ClaimsError(f"inputrep sweep --summarize {name} failed:\n{run.stdout}")
            specs[name] = Spec(name, work)
        claims = json.load(open(os.path.join(REPO, "repro", "claims.json"), encoding="utf-8"))["claims"]
        ids = [c["id"] for c in claims]
        if ids != list(range(1, len(ids) + 1)):
            raise ClaimsError("repro/claims.json: the claims are not numbered 1, 2, ... in order")
        body, counts = claims_section(claims, specs, missing)
        text = open(args.doc, encoding="utf-8").read()
        text = replace_section(text, "<!-- claims -->", "<!-- /claims -->", body, args.doc)
        with open(args.doc, "w", encoding="utf-8") as f:
            f.write(text)
        print("claims: " + ", ".join(f"{k} {v}" for k, v in counts.items())
              + (f"; no committed results for {', '.join(sorted(missing))}" if missing else ""))
    except ClaimsError as e:
        print(f"claims: {e}", file=sys.stderr)
        return 1
    finally:
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
