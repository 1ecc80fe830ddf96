"""docs/measures: a page per built-in instrument that agrees with the definitions."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from coevidence.measures.registry import get_measure, list_measures

DOCS = Path(__file__).resolve().parents[2] / "docs" / "measures"
BUILTIN = sorted(list_measures().query("source == 'builtin'")["id"])


def pages() -> dict[str, str]:
    return {p.stem: p.read_text(encoding="utf-8") for p in DOCS.glob("*.md") if p.stem != "index"}


def test_index_toctree_lists_every_page():
    index = (DOCS / "index.md").read_text(encoding="utf-8")
    block = re.search(r"```\{toctree\}(.*?)```", index, re.S)
    assert block is not None
    listed = {line.strip() for line in block.group(1).splitlines()
              if line.strip() and not line.strip().startswith(":")}
    assert listed == set(pages())


@pytest.mark.parametrize("mid", BUILTIN)
def test_page_documents_measure(mid):
    m = get_measure(mid)
    found = {name: text for name, text in pages().items() if f"`{mid}`" in text}
    assert found, f"no page documents {mid}"
    text = "\n".join(found.values())
    flagged = f"`{mid}` is **unverified**" in text
    assert flagged == (m.verified is False), mid
    for s in m.scales():
        if s.items:
            assert f"`{s.items[0]}`" in text and f"`{s.items[-1]}`" in text, (mid, s.id)
    assert f"`{mid}`" in (DOCS / "index.md").read_text(encoding="utf-8")
