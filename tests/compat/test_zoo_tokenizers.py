"""The zoo's tokenizers are the same in every process: a test's numbers must not depend on
which process built its fixtures.  (tokenizers' WordPiece trainer broke ties in hash order
and its Unigram trainer's scores moved in the sixth decimal: three processes gave three BERT
vocabularies, and a threshold test passed or failed with the test order.)"""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = """
import json, sys
from tests.compat import zoo
out = {}
for name in ("bert_tokenizer", "roberta_tokenizer", "t5_tokenizer", "gpt2_tokenizer",
             "llama_tokenizer", "gemma_tokenizer", "qwen2_tokenizer", "clip_tokenizer"):
    tok = getattr(zoo, name)()
    out[name] = [sorted(tok.get_vocab().items()),
                 tok("A small red circle left of a large blue square. The quick brown fox?")["input_ids"]]
json.dump(out, sys.stdout)
"""


def test_every_zoo_tokenizer_is_the_same_in_every_process():
    runs = [
        json.loads(
            subprocess.run(
                [sys.executable, "-c", SCRIPT], cwd=ROOT, check=True, capture_output=True, text=True
            ).stdout
        )
        for _ in range(2)
    ]
    for name in runs[0]:
        assert runs[0][name] == runs[1][name], f"zoo.{name} differs between two processes"
