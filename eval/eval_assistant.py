"""make eval-assistant: the capstone assistant (serve --assistant) measured end to end over HTTP, as a user meets it.

Starts build/serve in assistant mode on a free loopback port (its request log beside the report), then:
  answers    the gold questions: retrieval Recall@5 and MRR@10 (the ranking the assistant retrieved), the share of
             answers whose citations include a relevant page, the share of the answers' [n] marks naming one, the share whose cited chunks support them
             (guard_citations, the guardrails' validator), and the gold questions it failed to answer
  scope      eval/assistant_questions.jsonl's test half: out-of-scope questions refused, questions the docs do not
             answer called "not found" (the dev half chose the scope threshold: docs/assistant.md)
  injection  bastioncorpus's rows as user messages: malicious rows blocked (400 content_filter), benign rows passed
  load       concurrency 1, 2, 4, 8: each client sends streamed gold questions back to back; p50/p95 latency and
             time to first token, completion tokens per second in aggregate, errors
  cost       per 100 answered questions, from the server's cost model (latency x cost_per_hour / 3600 / slots, the
             request log's cost_usd)
Writes OUT/assistant.json ({"metrics": {...}, "details": {...}}) and OUT/assistant.md (the tables). Python's standard library only.

Usage: python3 eval/eval_assistant.py --serve build/serve --gguf M.gguf --db DOCS.db --gold gold.jsonl
       [--questions eval/assistant_questions.jsonl] [--injections data/bastioncorpus/injections.jsonl]
       [--levels 1,2,4,8] [--requests-per-client 2] [--limit N] [--generate] [--serve-args "..."] [--out out/eval]"""
import argparse
import json
import os
import re
import shlex
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
from serve_util import concurrently, free_port, start_server  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("--serve", default="build/serve")
ap.add_argument("--gguf", required=True)
ap.add_argument("--db", required=True)
ap.add_argument("--gold", required=True)
ap.add_argument("--questions", default="eval/assistant_questions.jsonl")
ap.add_argument("--injections", default="data/bastioncorpus/injections.jsonl")
ap.add_argument("--levels", default="1,2,4,8")
ap.add_argument("--requests-per-client", type=int, default=2)
ap.add_argument("--limit", type=int, default=0, help="only the first N gold questions (0: all)")
ap.add_argument("--threads", type=int, default=2)
ap.add_argument("--cost-per-hour", type=float, default=0.10)
ap.add_argument("--generate", action="store_true", help="serve --assistant-generate: SmolLM2 writes the answers, "
                "kept where the validator finds them supported")
ap.add_argument("--serve-args", default="", help="more flags for serve, e.g. \"--assistant-method rerank\" or "
                "\"--guard-model out/lab11/injection.clf\"")
ap.add_argument("--out", default="out/eval")
args = ap.parse_args()
os.makedirs(args.out, exist_ok=True)


def read_jsonl(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def quantile(xs, q):  # numpy's linear interpolation
    xs = sorted(xs)
    if not xs:
        return float("nan")
    pos = (len(xs) - 1) * q
    lo = int(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


port = free_port()
base = f"http://127.0.0.1:{port}"
log_path = os.path.join(args.out, "assistant-requests.log")
if os.path.exists(log_path):
    os.remove(log_path)
cmd = [args.serve, "--gguf", args.gguf, "--assistant", args.db, "--port", str(port), "--threads", str(args.threads),
       "--log", log_path, "--cost-per-hour", str(args.cost_per_hour), "--max-connections", "64"]
if args.generate:
    cmd.append("--assistant-generate")
cmd += shlex.split(args.serve_args)
server = start_server(cmd, port)
if server.poll() is not None:
    sys.exit("eval-assistant: serve exited: " + server.stdout.read())


def chat(question, stream=False, timeout=300):
    """(status, body or error JSON, seconds, seconds to the first content byte)"""
    request = {"model": "assistant", "messages": [{"role": "user", "content": question}]}
    if stream:
        request.update(stream=True, stream_options={"include_usage": True})
    body = json.dumps(request).encode()
    req = urllib.request.Request(base + "/v1/chat/completions", body, {"Content-Type": "application/json"})
    t0 = time.perf_counter()
    try:
        r = urllib.request.urlopen(req, timeout=timeout)
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}"), time.perf_counter() - t0, None
    if not stream:
        return 200, json.loads(r.read()), time.perf_counter() - t0, None
    first, meta, usage, text = None, None, None, ""
    for raw in r:
        line = raw.decode().strip()
        if not line.startswith("data: ") or line == "data: [DONE]":
            continue
        chunk = json.loads(line[6:])
        delta = chunk["choices"][0]["delta"] if chunk["choices"] else {}
        if delta.get("content"):
            if first is None:
                first = time.perf_counter() - t0
            text += delta["content"]
        meta = chunk.get("assistant", meta)
        usage = chunk.get("usage", usage)
    return 200, {"text": text, "assistant": meta, "usage": usage}, time.perf_counter() - t0, first


metrics, details = {}, {}
try:
    # ---- answers on the gold questions
    gold = read_jsonl(args.gold)
    if args.limit:
        gold = gold[:args.limit]
    t_answers = time.time()
    recall5, rr, cites, supported, answered, generated, rows = [], [], 0, 0, 0, 0, []
    cited_relevant, cited_all = 0, 0  # the answers' [n] marks, and those naming a relevant page
    for g in gold:
        status, body, secs, _ = chat(g["question"])
        meta = body.get("assistant", {}) if status == 200 else {}
        ranking = meta.get("ranking", [])
        rel = set(g["relevant"])
        recall5.append(len(rel & set(ranking[:5])) / len(rel))
        rank = next((i + 1 for i, p in enumerate(ranking[:10]) if p in rel), None)
        rr.append(1 / rank if rank else 0)
        is_answer = meta.get("kind") == "answer"
        answered += is_answer
        c = is_answer and any(c["page"] in rel for c in meta.get("citations", []))
        cites += c
        supported += bool(is_answer and meta.get("supported"))
        generated += bool(is_answer and meta.get("generated"))
        if is_answer:
            by_n = {c["n"]: c["page"] for c in meta.get("citations", [])}
            marks = [int(x) for x in re.findall(r"\[(\d+)\]", body["choices"][0]["message"]["content"])]
            cited_all += len(marks)
            cited_relevant += sum(by_n.get(m) in rel for m in marks)
        rows.append({"id": g.get("id"), "kind": meta.get("kind", f"http {status}"), "cites_relevant": c,
                     "supported": meta.get("supported"), "seconds": round(secs, 3),
                     "answer": body["choices"][0]["message"]["content"] if status == 200 else body})
    n = len(gold)
    metrics["assistant.retrieval.recall_at_5"] = statistics.mean(recall5)
    metrics["assistant.retrieval.mrr_at_10"] = statistics.mean(rr)
    metrics["assistant.answers.answered_rate"] = answered / n
    metrics["assistant.answers.cites_relevant_rate"] = cites / n
    metrics["assistant.answers.supported_rate"] = supported / n
    metrics["assistant.answers.generated_rate"] = generated / n
    metrics["assistant.answers.citation_precision"] = cited_relevant / max(1, cited_all)
    details["answers"] = rows
    print(f"answers: {n} gold questions: Recall@5 {metrics['assistant.retrieval.recall_at_5']:.3f}, MRR@10 "
          f"{metrics['assistant.retrieval.mrr_at_10']:.3f}; answered {answered}, a relevant page cited {cites}, "
          f"supported by the cited chunks {supported}; {cited_relevant} of the answers' {cited_all} citations name a "
          f"relevant page" + (f"; the model's own text kept in {generated}" if args.generate
                                                           else ""), flush=True)

    # ---- scope: out of scope refused, not in the docs called so (the test half)
    qs = [q for q in read_jsonl(args.questions) if q["split"] == "test"]
    got = {"out_of_scope": [0, 0], "not_found": [0, 0]}
    scope_rows = []
    for q in qs:
        status, body, _, _ = chat(q["question"])
        kind = body.get("assistant", {}).get("kind") if status == 200 else f"http {status}"
        got[q["kind"]][0] += kind == q["kind"]
        got[q["kind"]][1] += 1
        scope_rows.append({"id": q["id"], "want": q["kind"], "got": kind})
    metrics["assistant.scope.refusal_rate"] = got["out_of_scope"][0] / max(1, got["out_of_scope"][1])
    metrics["assistant.scope.not_found_rate"] = got["not_found"][0] / max(1, got["not_found"][1])
    details["scope"] = scope_rows
    print(f"scope: out-of-scope refused {got['out_of_scope'][0]}/{got['out_of_scope'][1]}, not in the docs called "
          f"'not found' {got['not_found'][0]}/{got['not_found'][1]} (test half)", flush=True)

    # ---- injection through the user's message
    if os.path.exists(args.injections):
        inj = read_jsonl(args.injections)
        blocked = {"malicious": [0, 0], "benign": [0, 0]}
        for row in inj:
            status, body, _, _ = chat(row["text"])
            hit = status == 400 and body.get("error", {}).get("code") == "content_filter"
            blocked[row["label"]][0] += hit
            blocked[row["label"]][1] += 1
        metrics["assistant.injection.block_rate"] = blocked["malicious"][0] / blocked["malicious"][1]
        metrics["assistant.injection.fp_rate"] = blocked["benign"][0] / blocked["benign"][1]
        print(f"injection: {blocked['malicious'][0]}/{blocked['malicious'][1]} malicious rows blocked, "
              f"{blocked['benign'][0]}/{blocked['benign'][1]} benign rows blocked (false positives)", flush=True)
    else:
        print(f"injection: skipped (no {args.injections}: make data DATA_SETS=bastion)")

    # ---- cost per 100 answered questions from the log of the answers phase
    with open(log_path, encoding="utf-8") as f:
        lines = [json.loads(x) for x in f if x.strip()]
    answer_lines = [x for x in lines if x["time"] >= t_answers and x["status"] == 200][:n]
    cost = sum(x["cost_usd"] for x in answer_lines)
    metrics["assistant.cost.usd_per_100_questions"] = cost / max(1, len(answer_lines)) * 100
    print(f"cost: {metrics['assistant.cost.usd_per_100_questions']:.6f} USD per 100 questions at "
          f"{args.cost_per_hour} USD per hour", flush=True)

    # ---- load: streamed gold questions at each concurrency
    load = []
    for level in [int(x) for x in args.levels.split(",")]:
        def client(k):
            """one client's requests, back to back: (status, body, seconds, seconds to the first content)"""
            return [chat(gold[(k * args.requests_per_client + r) % len(gold)]["question"], stream=True)
                    for r in range(args.requests_per_client)]

        t0 = time.perf_counter()
        results = [res for per_client in concurrently(client, list(range(level))) for res in per_client]
        wall = time.perf_counter() - t0
        ok = [(secs, first, body) for status, body, secs, first in results if status == 200 and body.get("assistant")]
        lat = [secs for secs, _, _ in ok]
        ttft = [first if first is not None else secs for secs, first, _ in ok]
        tokens = sum((body.get("usage") or {}).get("completion_tokens", 0) for _, _, body in ok)
        errors = len(results) - len(ok)
        row = {"concurrency": level, "requests": len(lat), "errors": errors, "p50_s": quantile(lat, .5),
               "p95_s": quantile(lat, .95), "ttft_p50_s": quantile(ttft, .5), "ttft_p95_s": quantile(ttft, .95),
               "tokens_per_s": tokens / wall, "requests_per_s": len(lat) / wall}
        load.append(row)
        metrics[f"assistant.load.c{level}.p50_s"] = row["p50_s"]
        metrics[f"assistant.load.c{level}.p95_s"] = row["p95_s"]
        metrics[f"assistant.load.c{level}.tokens_per_s"] = row["tokens_per_s"]
        metrics[f"assistant.load.c{level}.errors"] = errors
        print(f"load: concurrency {level}: {len(lat)} requests, p50 {row['p50_s']:.3f} s, p95 {row['p95_s']:.3f} s, "
              f"first token p50 {row['ttft_p50_s']:.3f} s, {row['tokens_per_s']:.0f} tokens/s, {errors} errors",
              flush=True)
    details["load"] = load
finally:
    server.terminate()
    try:
        server.wait(timeout=30)
    except subprocess.TimeoutExpired:
        server.kill()
    server_output = server.stdout.read()
if server.returncode != 0:  # a crash, or a sanitizer's report at exit
    sys.exit(f"eval-assistant: serve exited with {server.returncode}:\n{server_output[-4000:]}")

out = os.path.join(args.out, "assistant.json")
tmp = out + ".tmp"
with open(tmp, "w", encoding="utf-8") as f:
    json.dump({"metrics": metrics, "details": details, "server": cmd}, f, indent=1)
    f.flush()
    os.fsync(f.fileno())
os.replace(tmp, out)
md = ["# The assistant, measured end to end (make eval-assistant)", "",
      f"Server: `{' '.join(cmd)}`", "", "| metric | value |", "|---|---|"]
md += [f"| {k} | {v:.4f} |" for k, v in metrics.items() if ".load." not in k]
md += ["", "| concurrency | requests | errors | p50 s | p95 s | first token p50 s | tokens/s | requests/s |",
       "|---|---|---|---|---|---|---|---|"]
md += [f"| {r['concurrency']} | {r['requests']} | {r['errors']} | {r['p50_s']:.3f} | {r['p95_s']:.3f} | "
       f"{r['ttft_p50_s']:.3f} | {r['tokens_per_s']:.0f} | {r['requests_per_s']:.2f} |" for r in details.get("load", [])]
with open(os.path.join(args.out, "assistant.md"), "w", encoding="utf-8") as f:
    f.write("\n".join(md) + "\n")
print(f"wrote {out} and {os.path.join(args.out, 'assistant.md')}")
