#!/usr/bin/env python3
"""Turns a `make reliability` run (target/reliability/figures.jsonl and fuzz-*.log) into the
markdown tables of docs/RELIABILITY.md. Usage: reliability-report.py DIR"""
import glob, json, os, re, sys

d = sys.argv[1] if len(sys.argv) > 1 else "target/reliability"
rows = [json.loads(l) for l in open(os.path.join(d, "figures.jsonl")) if l.strip()]
by = {}
for r in rows:
    by.setdefault(r["part"], []).append(r["figures"])

def t(x):
    return f"{x:.1f}" if isinstance(x, float) else str(x)

print("### 1. Fault matrix\n")
print("| fault | retry mode | rate | batches | edits | deletes | same-instant | invocations | Lambda retries | invocation errors | item failures | faults injected | SDK attempts | lost | duplicated | regressed | behind | ahead | wrong text | dropped attributes | s |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
tot = {}
for c in by.get("faults", []) + by.get("faults-adaptive", []):
    e, dd = c["end"], c["during"]
    bad = {k: e[k] + dd[k] for k in ["lost", "duplicated", "regressed", "behind", "ahead", "wrong_text", "dropped_attributes"]}
    for k, v in list(bad.items()) + [("batches", c["delivery"]["batches"])]:
        tot[k] = tot.get(k, 0) + v
    print(f"| {c['fault']} | {c['mode']} | {c['rate']} | {c['delivery']['batches']} | "
          f"{c.get('edits', '-')} | {c.get('removes', '-')} | {c.get('collisions', '-')} | {c['delivery']['invocations']} | "
          f"{c['delivery']['retries']} | {c['delivery']['invocation_errors']} | {c['delivery']['item_failures']} | "
          f"{c['faults_injected']} | {c['sdk_attempts']} | " + " | ".join(str(bad[k]) for k in
          ["lost", "duplicated", "regressed", "behind", "ahead", "wrong_text", "dropped_attributes"]) + f" | {t(c['seconds'])} |")
print(f"\nTotal: {tot.get('batches', 0)} batches; lost {tot.get('lost', 0)}, duplicated {tot.get('duplicated', 0)}, "
      f"regressed {tot.get('regressed', 0)}, behind {tot.get('behind', 0)}, dropped attributes {tot.get('dropped_attributes', 0)}.")
explained = sum(c.get("explained", 0) for c in by.get("faults", []) + by.get("faults-adaptive", []))
print(f"Row checks mid-delivery that accepted a state only a partly failed batch explains: {explained}.\n")

for m in by.get("model", []):
    print("### 2. Model-based programs\n")
    print(f"{m['programs']} programs, {m['operations']} operations (seed {m['seed']}): {m['result']}; "
          f"rows checked {m['checked']['rows']}, lost {m['checked']['lost']}, duplicated {m['checked']['duplicated']}, "
          f"regressed {m['checked']['regressed']}, behind {m['checked']['behind']}, ahead {m['checked']['ahead']}, "
          f"wrong text {m['checked']['wrong_text']}, dropped attributes {m['checked']['dropped_attributes']}.")
    if "covered" in m:
        print("Operations done: " + ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in m["covered"].items()) + ".")
    for f in by.get("model-flaw", []):
        print(f"With the deliberate flaw {f['flaw']}: fails, shrinks to {f['operations']} operations {f['program']}; "
              f"its check: " + ", ".join(f"{k} {v}" for k, v in f["check"].items() if v) + ".")
    print()

for s in by.get("soak", []):
    print("### 3. Soak\n")
    print("| figure | value |\n|---|---|")
    for k, v in s.items():
        if isinstance(v, dict):
            v = ", ".join(f"{kk} {t(vv)}" for kk, vv in v.items())
        print(f"| {k} | {t(v)} |")
    print()

print("### 4. Bad input\n")
for c in by.get("corpus", []):
    print(f"Corpus: {c['files']} files, failures: {len(c['failures'])}.")
for c in by.get("corpus-size", []):
    print(f"Message item of {c['kb']} KB: rows at the message, text whole {c['whole']}, rows truncated {c['truncated']}, "
          f"batch item failures {c['failures']}.")
for c in by.get("corpus-huge-batch", []):
    print(f"Huge batch: {c['records']} records over {c['groups']} groups, {c['rows_moved']} rows moved in {t(c['seconds'])} s; "
          f"check lost {c['check']['lost']}, duplicated {c['check']['duplicated']}, behind {c['check']['behind']}.")
print()

print("### 5. Fuzzing\n")
print("| target | executions | seconds | exec/s | findings |\n|---|---|---|---|---|")
for log in sorted(glob.glob(os.path.join(d, "fuzz-*.log"))):
    target = os.path.basename(log)[5:-4]
    text = open(log, errors="replace").read()
    done = re.search(r"Done (\d+) runs in (\d+) second", text)
    execs = re.search(r"stat::number_of_executed_units:\s*(\d+)", text)
    n = int(execs.group(1)) if execs else (int(done.group(1)) if done else 0)
    secs = int(done.group(2)) if done else 0
    crashes = len(re.findall(r"Test unit written to", text))
    print(f"| {target} | {n} | {secs} | {n // max(secs, 1)} | {crashes} |")
print()

for p in by.get("privacy", []):
    print("### 6. Privacy\n")
    print(f"{p['log_lines']} log lines captured, {p['texts']} distinct texts plus every generated text's marker looked for: "
          f"{p['leaks']} lines with message text.\n")
