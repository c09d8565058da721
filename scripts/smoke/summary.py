"""The summary table: what each client saw (RESULTS) beside what went over the wire (PROXY_LOG).

usage: summary.py RESULTS PROXY_LOG present|absent   (whether tollway has /v1/responses)
Exits 1 if a control failed, or a Responses case failed while the route exists.
"""

import json
import sys

with open(sys.argv[1]) as lines:
    results = [json.loads(line) for line in lines]
with open(sys.argv[2]) as lines:
    wire = [json.loads(line) for line in lines]
route_present = sys.argv[3] == "present"


def short(value, width):
    text = "" if value is None else str(value).replace("\n", " ")
    return text if len(text) <= width else text[: width - 1] + "…"


def find_cost(value):
    """The first "cost" anywhere in a JSON value."""
    if isinstance(value, dict):
        if "cost" in value:
            return value["cost"]
        value = list(value.values())
    for item in value if isinstance(value, list) else ():
        if (found := find_cost(item)) is not None:
            return found
    return None


def wire_cost(body):
    """The cost tollway sent: in the JSON answer, or in any event of an SSE stream."""
    texts = [line[5:] for line in body.splitlines() if line.startswith("data:")] or [body]
    for text in texts:
        try:
            if (cost := find_cost(json.loads(text))) is not None:
                return cost
        except ValueError:
            pass
    return None


rows = [("case", "result", "endpoint → status", "in/out", "cost seen", "cost sent", "reply")]
bad = []
for row in results:
    hits = [w for w in wire if w["case"] == row["case"]]
    endpoint = ", ".join(f"{w['request']} → {w['status']}" for w in hits)
    endpoint = endpoint or f"none (status {row.get('status')})"
    if row["ok"]:
        verdict = "PASS"
    elif row["control"] or route_present:
        verdict = "FAIL"
        bad.append((row, hits))
    else:
        verdict = "FAIL (tolerated: no /v1/responses yet)"
    kind = " (control)" if row["control"] else ""
    sent = next((c for w in hits if (c := wire_cost(w["response_body"])) is not None), None)
    rows.append(
        (
            row["case"] + kind,
            verdict,
            endpoint,
            row.get("tokens", ""),
            row.get("cost") or "-",
            sent or "-",
            short(row.get("text") or row.get("error"), 60),
        )
    )

widths = [max(len(str(r[i])) for r in rows) for i in range(6)]
print()
for r in rows:
    print(
        "  ".join(short(c, 200).ljust(w) for c, w in zip(r[:6], widths, strict=True)) + "  " + str(r[6] or "")
    )

for row, hits in bad:
    print(f"\n--- {row['case']}: what the client sent and what tollway answered")
    for w in hits:
        print(f"{w['request']} → {w['status']}\n  request:  {short(w['request_body'], 2000)}")
        print(f"  response: {short(w['response_body'], 3000)}")
    if not hits:
        print(f"  no request reached tollway: {row.get('error')}")
passed = sum(r["ok"] for r in results)
print(
    f"\n{passed} passed, {len(results) - passed} failed"
    + ("" if route_present else " (/v1/responses is 404: Responses failures tolerated)")
)
sys.exit(1 if bad else 0)
