"""serve with a GPT checkpoint from train (characters, no chat template), on the CPU and on the CUDA device (the
emulated kernels here, the GPU with build/cuda/serve): the openai client's completions, chat as plain concatenation,
streaming, continuous batching against one-at-a-time answers, the vocabulary's limits, and --device cuda answering
as the CPU does. Usage: python3 tests/serve_gpt_test.py SERVE CHECKPOINT [SERVE_WITH_CUDA]"""
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request

from serve_util import check, concurrently, finish, free_port, start_server

binary, checkpoint = sys.argv[1], sys.argv[2]
cuda_binary = sys.argv[3] if len(sys.argv) > 3 else None
try:
    import openai
except ImportError:
    print("serve_gpt_test: skipped: the openai package is missing (pip install openai)")
    sys.exit(0)

def start(exe, *flags):
    port = free_port()
    return start_server([exe, "--checkpoint", checkpoint, "--port", str(port), "--slots", "4", "--threads", "2",
                         *flags], port), port


def stop(proc):
    proc.terminate()
    try:
        rc = proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        rc = "hung"
    return rc, proc.stdout.read()


prompts = ["ROMEO:", "JULIET:\nO Romeo", "First Citizen:\nWe are", "KING RICHARD", "Thou art", "What, ho!"]


def greedy(client, p):
    return client.completions.create(model="m", prompt=p, max_tokens=24, temperature=0).choices[0].text


server, port = start(binary)
client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="none", max_retries=0)
c = client.completions.create(model="m", prompt="ROMEO:", max_tokens=30, temperature=0, logprobs=2)
check(c.usage.prompt_tokens == 6 and c.usage.completion_tokens == 30 and len(c.choices[0].text) == 30,
      f"a completion of 30 characters from a character-level GPT: {c.choices[0].text!r}")
check(len(c.choices[0].logprobs.top_logprobs) == 30, "logprobs per character")
r = client.chat.completions.create(model="m", messages=[{"role": "system", "content": "ROMEO:"},
                                                        {"role": "user", "content": "Who art thou?"}],
                                   max_tokens=20, temperature=0)
plain = client.completions.create(model="m", prompt="ROMEO:\nWho art thou?\n", max_tokens=20, temperature=0)
check(r.choices[0].message.content == plain.choices[0].text,
      "chat without a template is the messages' contents, each followed by a newline")
chunks = list(client.completions.create(model="m", prompt="ROMEO:", max_tokens=30, temperature=0, stream=True))
check("".join(ch.choices[0].text for ch in chunks if ch.choices) == c.choices[0].text,
      "the stream joins to the same text")
try:
    client.completions.create(model="m", prompt="caf\u00e9 \u20ac", max_tokens=4)
    check(False, "characters outside the vocabulary are refused")
except openai.BadRequestError as e:
    check(e.status_code == 400 and "vocabulary" in e.body["message"], "characters outside the vocabulary get 400")
try:
    client.completions.create(model="m", prompt="ROMEO", max_tokens=200)
    check(False, "past the block size is refused")
except openai.BadRequestError as e:
    check(e.body["code"] == "context_length_exceeded", "prompt + max_tokens past the block size (128) get 400")
req = urllib.request.Request(f"http://127.0.0.1:{port}/tokenize", data=json.dumps({"content": "Thou"}).encode())
ids = json.loads(urllib.request.urlopen(req).read())["tokens"]
req = urllib.request.Request(f"http://127.0.0.1:{port}/detokenize", data=json.dumps({"tokens": ids}).encode())
check(len(ids) == 4 and json.loads(urllib.request.urlopen(req).read())["content"] == "Thou",
      "tokenize and detokenize round trip, one id per character")

alone = [greedy(client, p) for p in prompts]
together = concurrently(lambda p: greedy(client, p), prompts)
check(together == alone, f"{len(prompts)} concurrent greedy completions equal their one-at-a-time answers")
rc, log = stop(server)
check(rc == 0 and "on cpu" in log, f"the CPU server stops cleanly (status {rc})")

# ---- /v1/embeddings with all-MiniLM-L6-v2 (when make data DATA_SETS=minilm has fetched it)
if os.path.exists("data/minilm/model.safetensors"):
    server, port = start(binary, "--embed-model", "data/minilm")
    client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="none", max_retries=0)
    texts = ["How do I allow cross-origin requests?", "Let a browser on another origin call my API", "bake bread"]
    for fmt in ("float", "base64"):
        r = client.embeddings.create(model="all-MiniLM-L6-v2", input=texts, encoding_format=fmt)
        e = [d.embedding for d in r.data]
        if isinstance(e[0], str):  # the client leaves base64 undecoded when asked for it explicitly
            import base64
            import struct
            e = [list(struct.unpack("<384f", base64.b64decode(x))) for x in e]
        cos = [sum(a * b for a, b in zip(e[0], x)) for x in e]
        check(len(e) == 3 and all(len(x) == 384 for x in e) and abs(cos[0] - 1) < 1e-5 and cos[1] > cos[2] + 0.2 and
              r.usage.prompt_tokens > 10, f"/v1/embeddings ({fmt}): normalized, related texts closer "
                                          f"({cos[1]:.3f} vs {cos[2]:.3f})")
    one = client.embeddings.create(model="m", input="hello world", encoding_format="float").data[0].embedding
    check([round(x, 4) for x in one[:5]] == [-0.0345, 0.031, 0.0067, 0.0261, -0.0394],
          "/v1/embeddings: 'hello world' starts as the model card says")
    try:
        client.embeddings.create(model="m", input=[[1, 2, 3]])
        check(False, "token ids as input are refused")
    except openai.BadRequestError as e:
        check(e.status_code == 400 and e.body["param"] == "input", "token ids as input get 400 naming input")
    rc, log = stop(server)
    check(rc == 0, f"the server with an embedding model stops cleanly (status {rc})")
else:
    print("note: data/minilm is absent (make data DATA_SETS=minilm): /v1/embeddings not tested")
try:
    s, p = start(binary)
    openai.OpenAI(base_url=f"http://127.0.0.1:{p}/v1", api_key="none", max_retries=0).embeddings.create(
        model="m", input="x")
    check(False, "embeddings without --embed-model are refused")
except openai.NotFoundError as e:
    check(e.body["code"] == "model_not_found", "without --embed-model, /v1/embeddings is 404 model_not_found")
rc, log = stop(s)
check(rc == 0, f"and stops cleanly (status {rc})")

# ---- slow senders: stalled bodies and a slowloris hold connections; others are still served, the idle timeout
# closes the stalled ones, and the connection limit bounds them
server, port = start(binary, "--idle-timeout", "2", "--max-connections", "16")
stalled = []
for i in range(12):  # a body promised and never finished
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"pro")
    stalled.append(s)
slow = [socket.create_connection(("127.0.0.1", port)) for _ in range(3)]  # headers a byte at a time
for b in b"GET /health HTTP/1.1\r\nHo":
    for s in slow:
        s.send(bytes([b]))
    time.sleep(0.02)
client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="none", max_retries=0)
check(greedy(client, prompts[0]) == alone[0], "with 15 stalled connections open, a request is still answered")


def closed_by_server(s, within):
    s.settimeout(within)
    try:
        return s.recv(4096) == b""
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False


t0 = time.time()
closed = sum(closed_by_server(s, 8) for s in stalled + slow)
check(closed == 15, f"the idle timeout (2 s) closed {closed} of 15 stalled connections ({time.time() - t0:.1f} s)")
for s in stalled + slow:
    s.close()
full = []
for i in range(16):  # every connection of --max-connections 16 held by a stalled body
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
    full.append(s)
time.sleep(0.3)  # accepted by the server: the limit is reached
t0 = time.time()
answer = greedy(client, prompts[1])  # waits in the listen backlog until the idle timeout frees a connection
waited = time.time() - t0
check(answer == alone[1] and waited > 1, f"with every connection held by stalled clients, a new request waits and is "
                                         f"answered once the idle timeout frees one ({waited:.1f} s)")
for s in full:
    s.close()
with urllib.request.urlopen(f"http://127.0.0.1:{port}/health") as h:
    check(h.status == 200, "still healthy after the slow senders")
rc, log = stop(server)
check(rc == 0, f"the server stops cleanly after the slow senders (status {rc})")

if cuda_binary:
    server, port = start(cuda_binary, "--device", "cuda")
    if server.poll() is not None:
        check(False, "serve --device cuda starts: " + server.stdout.read()[-300:])
    else:
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="none", max_retries=0)
        on_device = concurrently(lambda p: greedy(client, p), prompts)
        check(on_device == alone, "--device cuda: the same greedy completions as the CPU, served concurrently")
        rc, log = stop(server)
        check(rc == 0 and "on cuda" in log, f"the CUDA server stops cleanly (status {rc})")
finish("serve_gpt_test")
