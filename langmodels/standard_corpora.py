"""The field's standard test and validation files, recognised by the sha256 of their bytes.

A user who points the toolkit at a Penn Treebank or WikiText-2 folder is scoring the text that
published perplexities were measured on, and the report can put those figures beside ours. A
file is recognised by the sha256 of its bytes as distributed (after decompression, before any
line handling), never by its name: a renamed copy is still PTB test, and an edited `ptb.test.txt`
is not. None of these files ships with langmodels.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class StandardFile:
    corpus: str  # the benchmark's short name: "ptb", "wikitext-2"
    split: str  # "valid" or "test"
    description: str


# sha256 of each file's bytes as distributed.
STANDARD_FILES = {
    "dd65dff31e70846b2a6030a87482edcd5d199130cdcfa1f3dccbb033728deee0":
        StandardFile("ptb", "test", "Penn Treebank test, Mikolov's preprocessing (ptb.test.txt)"),
    "c9fe6985fe0d4ccb578183407d7668fc6066c20700cb4cf87d8ff1cc34df1bf2":
        StandardFile("ptb", "valid", "Penn Treebank valid, Mikolov's preprocessing (ptb.valid.txt)"),
    "d790b833ef8cf03a90db7bf1271b7520b83c45ce07ba3c1a9699df81e239eca0":
        StandardFile("wikitext-2", "test", "WikiText-2 test, tokenized (wiki.test.tokens)"),
    "f0737ed31fc1329026e95cb8b98e19c2a182c39c240ab909dc31abf2f8af58e8":
        StandardFile("wikitext-2", "valid", "WikiText-2 valid, tokenized (wiki.valid.tokens)"),
}


def identify(source_sha256: str | None) -> StandardFile | None:
    """The standard file whose bytes have this sha256, or None."""
    if not source_sha256:
        return None
    return STANDARD_FILES.get(source_sha256)


def identify_split(split) -> StandardFile | None:
    """The standard file a corpus split was read from (a Split read from a file records the
    sha256 of that file's bytes as ``source_sha256``; shipped corpora and lists have none)."""
    return identify(getattr(split, "source_sha256", None))
