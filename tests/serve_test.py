"""End-to-end test of build/serve with a real client: the `openai` package (chat, completions, streaming, logprobs,
stop strings, errors), raw HTTP for the SSE bytes and the limits, concurrent requests against sequential ones
(continuous batching must not change a greedy answer), a client that vanishes mid-stream, hostile bodies, the
Prometheus text, and a clean SIGTERM. Usage: python3 tests/serve_test.py SERVE_BINARY MODEL.gguf [--hostile N]
Exits 0 when every check passes; skips (exit 0, with a message) without the model or the openai package."""
import http.client
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time

binary, model = sys.argv[1], sys.argv[2]
hostile = int(sys.argv[sys.argv.index("--hostile") + 1]) if "--hostile" in sys.argv else 300
if not os.path.exists(model):
    print(f"serve_test: skipped: {model} is absent (make data DATA_SETS=smollm2 fetches it)")
    sys.exit(0)
try:
    import openai
except ImportError:
    print("serve_test: skipped: the openai package is missing (pip install openai)")
    sys.exit(0)

from serve_util import check, concurrently, finish, free_port

port, key = free_port(), "test-key-123"
server = subprocess.Popen([binary, "--gguf", model, "--port", str(port), "--slots", "4", "--ctx", "1024",
                           "--threads", "2", "--api-key", key, "--max-body", "65536", "--queue", "16",
                           "--prefill-chunk", "2048"],  # prompts unsplit: one-at-a-time answers are the reference
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
for _ in range(300):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
        break
    except OSError:
        time.sleep(0.1)


def raw(method, path, body=None, headers=None, auth=True):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    h = dict(headers or {})
    if auth:
        h["Authorization"] = "Bearer " + key
    data = body if isinstance(body, (bytes, type(None))) else json.dumps(body).encode()
    c.request(method, path, body=data, headers=h)
    r = c.getresponse()
    out = r.status, dict(r.getheaders()), r.read()
    c.close()
    return out


client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key=key, max_retries=0)
ask = [{"role": "user", "content": "What is the capital of France?"}]

# ---- the openai client
r = client.chat.completions.create(model="m", messages=ask, max_tokens=24, temperature=0)
answer = r.choices[0].message.content
check(len(answer) > 0 and r.choices[0].finish_reason in ("stop", "length"), f"chat answer: {answer!r}")
check(r.usage.prompt_tokens > 10 and r.usage.completion_tokens > 0 and
      r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens, "usage adds up")
chunks = list(client.chat.completions.create(model="m", messages=ask, max_tokens=24, temperature=0, stream=True,
                                             stream_options={"include_usage": True}))
streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
check(streamed == answer, "the stream's deltas join to the same greedy answer")
check(chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == r.usage.completion_tokens,
      "the last chunk carries the usage (stream_options.include_usage)")
check([c.choices[0].finish_reason for c in chunks if c.choices][-1] == r.choices[0].finish_reason,
      "the stream ends with the same finish_reason")
c = client.completions.create(model="m", prompt="The capital of France is", max_tokens=8, temperature=0, logprobs=2)
lp = c.choices[0].logprobs
check(len(lp.tokens) == len(lp.token_logprobs) == len(lp.top_logprobs) == c.usage.completion_tokens and
      all(len(t) == 2 for t in lp.top_logprobs) and all(v <= 0 for v in lp.token_logprobs),
      "completions logprobs: tokens, token_logprobs and 2 top_logprobs per token")
r = client.chat.completions.create(model="m", messages=ask, max_tokens=5, temperature=0, logprobs=True, top_logprobs=3)
content = r.choices[0].logprobs.content
check(len(content) == r.usage.completion_tokens and all(len(t.top_logprobs) == 3 and t.bytes and t.logprob <= 0
                                                        and t.logprob >= t.top_logprobs[-1].logprob for t in content),
      "chat logprobs in OpenAI's shape: token, logprob, bytes, top_logprobs")
full = client.completions.create(model="m", prompt="The capital of France is", max_tokens=8, temperature=0)
cut = client.completions.create(model="m", prompt="The capital of France is", max_tokens=8, temperature=0, stop=["."])
check(cut.choices[0].finish_reason == "stop" and "." not in cut.choices[0].text and
      full.choices[0].text.startswith(cut.choices[0].text), f"stop strings cut the text: {cut.choices[0].text!r}")
s1 = client.chat.completions.create(model="m", messages=ask, max_tokens=12, temperature=0.9, seed=42)
s2 = client.chat.completions.create(model="m", messages=ask, max_tokens=12, temperature=0.9, seed=42)
check(s1.choices[0].message.content == s2.choices[0].message.content, "the same seed samples the same answer")
check(client.models.list().data[0].id.endswith(".gguf"), "GET /v1/models")

# ---- errors in OpenAI's shape
try:
    openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="wrong", max_retries=0).chat.completions.create(
        model="m", messages=ask)
    check(False, "a wrong API key is refused")
except openai.AuthenticationError as e:
    check(e.status_code == 401, "a wrong API key gets 401")
try:
    client.chat.completions.create(model="m", messages=ask, temperature=7)
    check(False, "temperature 7 is refused")
except openai.BadRequestError as e:
    check(e.status_code == 400 and e.body["param"] == "temperature", "a bad field gets 400 naming it")
try:
    client.chat.completions.create(model="m", messages=[{"role": "user", "content": "word " * 2000}], max_tokens=10)
    check(False, "a prompt longer than the context is refused")
except openai.BadRequestError as e:
    check(e.body["code"] == "context_length_exceeded", "a prompt past the context gets context_length_exceeded")
status, _, body = raw("POST", "/v1/chat/completions", b"x" * 70000)
check(status == 413 and b"request_too_large" in body, "a body over --max-body gets 413")
status, _, body = raw("GET", "/nothing")
check(status == 404 and json.loads(body)["error"]["code"] == "not_found", "an unknown route gets 404")
status, _, body = raw("GET", "/health", auth=False)
check(status == 200 and json.loads(body)["status"] == "ok", "/health needs no key")

# ---- tools and response_format (constrained decoding, docs/grammar.md)
weather_tool = {"type": "function", "function": {"name": "get_weather", "description": "the weather of a city",
                "parameters": {"type": "object", "properties": {"city": {"type": "string", "maxLength": 30}},
                               "required": ["city"], "additionalProperties": False}}}
calc_tool = {"type": "function", "function": {"name": "calculator", "parameters": {
    "type": "object", "properties": {"expression": {"type": "string", "maxLength": 40}}, "required": ["expression"]}}}
ask_weather = [{"role": "user", "content": "What is the weather in Paris?"}]
for seed in range(6):  # sampled at temperature 1: the call must still parse and follow its tool's schema
    r = client.chat.completions.create(model="m", messages=ask_weather, tools=[weather_tool, calc_tool],
                                       tool_choice="required", max_tokens=60, temperature=1, seed=seed)
    calls = r.choices[0].message.tool_calls
    check(r.choices[0].finish_reason == "tool_calls" and calls and len(calls) == 1 and
          calls[0].function.name in ("get_weather", "calculator") and
          isinstance(json.loads(calls[0].function.arguments), dict), f"tool_choice required gives a tool call (seed {seed})")
    a = json.loads(calls[0].function.arguments)
    check(("city" in a and len(a["city"]) <= 30) if calls[0].function.name == "get_weather" else "expression" in a,
          "the call's arguments follow its tool's schema")
r = client.chat.completions.create(model="m", messages=ask_weather, tools=[weather_tool, calc_tool], max_tokens=40,
                                   tool_choice={"type": "function", "function": {"name": "get_weather"}}, temperature=0)
call = r.choices[0].message.tool_calls[0]
check(call.function.name == "get_weather" and call.id and r.choices[0].message.content is None,
      "tool_choice naming a function calls that function")
history = ask_weather + [{"role": "assistant", "content": None, "tool_calls": [
    {"id": call.id, "type": "function", "function": {"name": "get_weather", "arguments": call.function.arguments}}]},
    {"role": "tool", "tool_call_id": call.id, "content": '{"temperature_c": 14, "condition": "cloudy"}'}]
r = client.chat.completions.create(model="m", messages=history, tools=[weather_tool], tool_choice="none",
                                   max_tokens=30, temperature=0)
check(r.choices[0].message.content and not r.choices[0].message.tool_calls, "a tool result in the history; "
      "tool_choice none answers in text")
chunks = list(client.chat.completions.create(model="m", messages=ask_weather, tools=[weather_tool],
                                             tool_choice="required", max_tokens=40, temperature=0, stream=True))
streamed = [c.choices[0].delta.tool_calls for c in chunks if c.choices and c.choices[0].delta.tool_calls]
check(len(streamed) == 1 and streamed[0][0].function.name == "get_weather" and
      chunks[-1].choices[0].finish_reason == "tool_calls", "a streamed tool call comes as one tool_calls delta")
person = {"type": "object", "properties": {"name": {"type": "string", "maxLength": 20}, "age": {"type": "integer"},
          "pets": {"type": "array", "items": {"enum": ["cat", "dog"]}, "maxItems": 3}}, "required": ["name", "age"]}
for seed in range(4):
    r = client.chat.completions.create(model="m", messages=[{"role": "user", "content": "Describe a person as JSON."}],
                                       response_format={"type": "json_schema", "json_schema": {"name": "p", "schema": person}},
                                       max_tokens=60, temperature=1, seed=seed)
    doc = json.loads(r.choices[0].message.content)
    check(isinstance(doc["name"], str) and isinstance(doc["age"], int) and
          all(p in ("cat", "dog") for p in doc.get("pets", [])), f"response_format json_schema is followed (seed {seed})")
r = client.chat.completions.create(model="m", messages=ask_weather, tools=[weather_tool], tool_choice="required",
                                   max_tokens=40, temperature=0, logprobs=True, top_logprobs=5)
check(r.choices[0].message.tool_calls and all(t.logprob > -1e30 and all(a.logprob > -1e30 for a in t.top_logprobs)
      for t in r.choices[0].logprobs.content), "logprobs of a constrained reply: only allowed tokens, all finite")
try:
    client.chat.completions.create(model="m", messages=ask, response_format={"type": "json_schema", "json_schema": {
        "name": "x", "schema": {"type": "string", "format": "email"}}})
    check(False, "an unsupported schema keyword is refused")
except openai.BadRequestError as e:
    check(e.body["param"] == "response_format" and "format" in e.body["message"],
          "an unsupported schema keyword gets 400 naming it")

# ---- raw SSE bytes
status, headers, body = raw("POST", "/v1/completions", {"prompt": "Hello", "max_tokens": 4, "temperature": 0,
                                                         "stream": True})
events = [e for e in body.decode().split("\n\n") if e]
check(status == 200 and headers.get("Content-Type") == "text/event-stream" and
      all(e.startswith("data: ") for e in events) and events[-1] == "data: [DONE]" and
      all(json.loads(e[6:])["object"] == "text_completion" for e in events[:-1]), "SSE: data: lines, then [DONE]")

# ---- continuous batching: 8 concurrent greedy chats answer as they do one at a time
questions = ["Name three primary colors.", "Say hello in Spanish.", "What is 12 times 12?",
             "Write a haiku about the sea.", "Why is the sky blue?", "Give me a word that rhymes with cat.",
             "What does a compiler do?", "What is the largest planet?"]


def one(q):
    return client.chat.completions.create(model="m", messages=[{"role": "user", "content": q}], max_tokens=20,
                                          temperature=0).choices[0].message.content


alone = [one(q) for q in questions]
t0 = time.time()
together = concurrently(one, questions)
check(together == alone, f"8 concurrent greedy chats equal their one-at-a-time answers ({time.time() - t0:.1f} s)")

# ---- a client that goes away mid-stream frees its slot
c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
c.request("POST", "/v1/completions", body=json.dumps({"prompt": "Once upon a time", "max_tokens": 900,
                                                      "stream": True}).encode(),
          headers={"Authorization": "Bearer " + key})
resp = c.getresponse()
resp.read1(200)
c.sock.shutdown(socket.SHUT_RDWR)
c.close()
busy = None
for _ in range(100):
    _, _, m = raw("GET", "/metrics")
    busy = [l for l in m.decode().splitlines() if l.startswith("gradlab_busy_slots ")]
    if busy == ["gradlab_busy_slots 0"]:
        break
    time.sleep(0.1)
check(busy == ["gradlab_busy_slots 0"], "a vanished streaming client's request is cancelled and its slot freed")

# ---- hostile bodies: each gets a 4xx, the server stays up
rng = random.Random(7)
good = json.dumps({"messages": ask, "max_tokens": 2}).encode()
bad = 0
for i in range(hostile):
    kind = i % 6
    if kind == 0:
        body = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 200)))
    elif kind == 1:
        body = good[:rng.randrange(len(good))]
    elif kind == 2:
        body = json.dumps({"messages": [{"role": rng.choice(["user", 5, None, "x"]), "content": rng.choice(
            ["hi", 3, [1], None])}], "max_tokens": rng.choice([1e300, -1, "5", 2.5, 0])}).encode()
    elif kind == 3:
        body = b'{"messages": [{"role": "user", "content": "\xff\xfe\xc0"}], "max_tokens": 1, "temperature": 1e999}'
    elif kind == 4:
        body = json.dumps({"prompt": rng.choice([None, 1, ["a"], {"x": 1}]), "stop": rng.choice([[], [""], 5, ["a"] * 9])}).encode()
    else:
        body = b"[" * rng.randrange(1, 5000)
    path = rng.choice(["/v1/chat/completions", "/v1/completions", "/tokenize", "/detokenize"])
    status, _, resp = raw("POST", path, body)
    if not (400 <= status < 500 or (status == 200 and path in ("/tokenize", "/detokenize"))):
        bad += 1
        if bad < 5:
            print(f"  hostile {i} {path}: {status} {body[:80]!r} -> {resp[:200]!r}")
status, _, _ = raw("GET", "/health", auth=False)
check(bad == 0 and status == 200 and server.poll() is None, f"{hostile} hostile requests each got a 4xx; still healthy")

# ---- metrics
_, headers, m = raw("GET", "/metrics")
text = m.decode()
names = ["gradlab_requests_total", "gradlab_prompt_tokens_total", "gradlab_generated_tokens_total",
         "gradlab_time_to_first_token_seconds_bucket", "gradlab_inter_token_latency_seconds_count",
         "gradlab_queue_length", "gradlab_busy_slots", "gradlab_prefix_tokens_reused_total",
         "gradlab_kv_cache_capacity_tokens"]
check(all(n in text for n in names), "/metrics has every series")
reused = int([l for l in text.splitlines() if l.startswith("gradlab_prefix_tokens_reused_total ")][0].split()[1])
check(reused > 0, f"follow-up prompts reused {reused} cached prefix tokens")
try:
    p = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True)
    check(p.returncode == 0, "promtool check metrics: " + (p.stdout + p.stderr).strip()[:200])
except FileNotFoundError:
    print("note: promtool is not installed (Debian prometheus); the exposition format was not linted")

# ---- SIGTERM: a clean stop
server.send_signal(signal.SIGTERM)
try:
    rc = server.wait(timeout=30)
except subprocess.TimeoutExpired:
    server.kill()
    rc = "hung"
log = server.stdout.read()
check(rc == 0 and "serve: stopped" in log, f"SIGTERM stops the server with status 0 (got {rc})")
finish("serve_test")
