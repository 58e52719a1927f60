"""Token vocabularies of the LRA text tasks and the encoders that turn raw rows into id arrays.

ListOps (reference: state-spaces/s4 `listops_tokenizer`, after the LRA input pipeline): the
tokenizer renames "]" to "X", deletes "(" and ")" and splits on whitespace, so
"[MAX 2 9 ]" -> ["[MAX", "2", "9", "X"]. The vocabulary is the grammar's 15 tokens after the
specials <pad> (id 0) and <eos> (id 1): 17 ids. The reference also reserves <unk> for tokens
absent from the training split; here every token outside the grammar is a malformed file and
an error, so no <unk> is needed. The reference orders tokens by training-set frequency; a
fixed order gives the same vocabulary for every copy of the data (an embedding does not care).

Bytes (LRA Text and Retrieval, as the LRA byte-level encoder): <pad> = 0, <eos> = 1, byte b ->
b + 2; 258 ids.

Sequences are truncated to `seq_len - 1` tokens when <eos> is appended (else `seq_len`), get
<eos> appended (reference default `append_eos=True`) and are right-padded with <pad>.
"""

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from common import UserError

PAD_ID = 0
EOS_ID = 1
LISTOPS_TOKENS = ("<pad>", "<eos>", *"0123456789", "[MAX", "[MIN", "[MED", "[SM", "X")
BYTE_OFFSET = 2
BYTE_VOCAB_SIZE = 256 + BYTE_OFFSET

_LISTOPS_IDS = {token: i for i, token in enumerate(LISTOPS_TOKENS)}
_LISTOPS_TRANSLATION = str.maketrans({"]": "X", "(": None, ")": None})


def pad_rows(rows: Sequence[np.ndarray], seq_len: int, append_eos: bool, dtype) -> np.ndarray:
    """Token rows -> (n, seq_len) array: each truncated, <eos>-terminated if asked, <pad>-filled."""
    keep = seq_len - int(append_eos)
    out = np.full((len(rows), seq_len), PAD_ID, dtype=dtype)  # (n, seq_len)
    for i, row in enumerate(rows):
        row = row[:keep]
        out[i, : len(row)] = row
        if append_eos:
            out[i, len(row)] = EOS_ID
    return out


def listops_tokens(source: str) -> list[str]:
    """The reference ListOps tokenization of one `Source` field."""
    return source.translate(_LISTOPS_TRANSLATION).split()


def encode_listops(
    sources: Sequence[str], seq_len: int, append_eos: bool, path: Path, first_line: int
) -> np.ndarray:
    """ListOps expressions -> (n, seq_len) uint8 token ids.

    path, first_line: the file and line number of sources[0], named when a row holds a token
    outside the ListOps grammar.
    """
    rows = []
    for i, source in enumerate(sources):
        tokens = listops_tokens(source)
        ids = [_LISTOPS_IDS.get(token, -1) for token in tokens]
        if -1 in ids:
            bad = tokens[ids.index(-1)]
            raise UserError(
                f"{path}: line {first_line + i} has token {bad!r}, which is not in the ListOps "
                f"grammar {list(LISTOPS_TOKENS[2:])}; the file is malformed"
            )
        rows.append(np.array(ids, dtype=np.uint8))
    return pad_rows(rows, seq_len, append_eos, np.uint8)


def encode_bytes(texts: Sequence[bytes], seq_len: int, append_eos: bool) -> np.ndarray:
    """Byte strings -> (n, seq_len) int16 ids (byte b -> b + 2), <eos>-terminated and padded."""
    rows = [np.frombuffer(text, dtype=np.uint8).astype(np.int16) + BYTE_OFFSET for text in texts]
    return pad_rows(rows, seq_len, append_eos, np.int16)
