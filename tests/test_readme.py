"""The README's Python examples run as written (its `datasets` calls included), on a small crawl folder made here."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from corpus.core.document import Document
from corpus.core.io import write_shard

ROOT = Path(__file__).resolve().parents[1]
TEXT = ("The village library opened its doors in the spring of that year, and the people who lived nearby came to "
        "borrow books about gardening, history and the stars. The librarian kept a careful record of every loan and "
        "noticed that the most popular books were the ones with pictures of the river and the old mill. Children "
        "came after school to read with their friends, and on Saturday mornings there was a story hour.")


def python_blocks(markdown: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", markdown, flags=re.S | re.M)


def test_the_readmes_python_examples_run_as_written(tmp_path: Path) -> None:
    blocks = python_blocks((ROOT / "README.md").read_text(encoding="utf-8"))
    assert blocks and any("load_dataset" in block for block in blocks)
    crawl = tmp_path / "runs" / "site" / "crawl" / "data"  # what `corpus crawl -o runs/site/crawl` leaves
    write_shard(crawl / "crawl-00000.parquet",
                [Document(f"d{i}", TEXT.replace("village", f"village {i}"), {"url": f"http://x.test/{i}"})
                 for i in range(4)])
    for block in blocks:
        script = tmp_path / "example.py"
        script.write_text("if __name__ == '__main__':\n" + "".join(f"    {line}\n" for line in block.splitlines()))
        result = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True,
                                timeout=300, env={**os.environ, "HF_DATASETS_CACHE": str(tmp_path / "hf"),
                                                  "HF_HUB_OFFLINE": "1"})
        assert result.returncode == 0, block + "\n" + result.stderr[-3000:]
