"""Readers and writers of sequence datasets: `load`, `save`, `detect_format`.

Formats
-------
``"lines"``
    One user per line, ``user item item ...`` (the ICLRec / DR4SR files in
    ``../shared/data``). Users keep the order of the file; ``user_ids`` holds
    the first token of each line. Tokens are separated by any ASCII
    whitespace (tabs and CRLF line ends read fine); blank lines are skipped
    but still counted in line numbers; a user line without items, and a
    user on two lines, are errors.
``"pairs"``
    One interaction per line, ``user item`` or ``user item timestamp``
    (SASRec style). Every line has the same number of tokens. Sequences are
    ordered by user id; a user's items keep the file order, or are sorted by
    timestamp (stably: ties keep the file order) when there is a third column.
``"recbole"``
    A RecBole atomic ``.inter`` file (typed header ``user_id:token
    item_id:token rating:float timestamp:float``): ids renumbered, ordered by
    time, timestamps kept, item categories from a ``.item`` file beside it
    (`fastregen.data.io.recbole`), its typed header checked. ``format="auto"``
    reads every ``.inter`` file so (RecBole names its atomic files by their
    suffix); pass ``format="tsv"`` to read one as a plain table.
``"csv"``, ``"tsv"``, ``"parquet"``
    Tables with a header (an ``.inter`` file read with ``format="tsv"`` has
    its ``:token`` type suffixes ignored). The ``user``/``item``/``timestamp`` keyword
    arguments name the columns (defaults: the first present of
    ``user_id, user, userId, uid`` / ``item_id, item, itemId, iid`` /
    ``timestamp, ts, time``; no timestamp column means file order). Ids may
    be integers or strings. Timestamps may be integers (kept), floats
    (floored to int64, ordered by the exact values) or dates/times (seconds
    since the epoch). Parquet needs pyarrow (``pip install
    fastregen[parquet]``); CSV/TSV use it when installed (fast, multi-threaded)
    and otherwise fall back to Python's ``csv`` module (same results, slow,
    no date/time parsing).

``format="auto"`` picks by extension: ``.csv``, ``.tsv``, ``.inter`` (recbole),
``.parquet``/``.pq``; anything else (``.txt``, ...) is a text file of
integers, read as ``"pairs"`` when the first complete lines (up to 64 KiB)
all hold exactly two tokens *and* some user occurs on two of them (which a
``"lines"`` file forbids), else as ``"lines"``. A trailing ``.gz`` is read
(and written) through gzip; truncated or corrupt gzip data is a
``ValueError`` naming the file.

Text files are opened once and read front to back, so a pipe or
``/dev/stdin`` reads whole (the sniffed bytes are kept, not read again);
tables must be regular files (their readers seek). Lines end with ``\n``
or ``\r\n``; a file whose first 64 KiB hold a carriage return but no
newline has old-Mac ``\r`` line ends and is read as such; any other
carriage return followed by more content on its line is an error (it would
silently join two lines).

Ids
---
Item 0 is the padding index, so with ``remap=False`` item ids must be
``>= 1`` and fit in int32; the ids are kept as they are (so results on the
shared files are comparable with published ones). ``remap=True`` renumbers
the items ``1..N`` in increasing order of their original id and keeps the
originals in ``item_ids`` (``item_ids[0]``, the padding slot, is -1 for
integer ids and ``""`` for strings); this accepts item 0, ids beyond int32
and (for tables) strings. ``remap=None`` (the default) means ``False`` for the text
formats and ``True`` for tables. Without remapping, ids must also be dense
enough to size tables by (`fastregen.data.dataset.check_dense_ids`: the
largest id at most 2^20, or at least half of ``1..max`` occurring), since
every model and miner allocates per item id: ``1 2\n2 2147483647\n`` is
refused with a hint to remap rather than asking for 512 GiB later. Negative ids are an error in every format,
users included. Nothing is dropped silently: every bad value is a
``ValueError`` naming the file, the 1-based line (or the column and row)
and the value.

Streaming
---------
Text files are read with ``readinto`` in chunks of ``chunk_bytes`` (8 MiB)
into one reused buffer, cut at the last newline; each chunk is tokenized in
place by the compiled core with the GIL released (``_core.parse_user_lines``
for ``"lines"``, which validates and writes the int32 items straight into
the result; ``_core.tokenize_int_lines`` into int64 tokens for the other
text paths). The items array is sized by the file (half its bytes is an
upper bound on the tokens; never-written pages are never resident) and
shrinks in place at the end. Peak memory is therefore the final arrays plus one
chunk's worth of temporaries: loading a 10 M-interaction, 70 MiB file peaks
about 80 MiB above the interpreter (the final arrays are 50 MiB), see
``benchmarks/results/data.md``. Tables are read column-wise by pyarrow,
only the needed columns.

Modules
-------
One module per concern (each reads only those listed before it):

* `files` -- opening an input (gzip, pipes, missing files), the format from
  a suffix or the first bytes (`detect_format`), the progress bar;
* `chunks` -- the chunked reader of integer text (`iter_int_line_chunks`);
* `ids` -- id range checks, renumbering, grouping sorted interactions into CSR;
* `text` -- the ``"lines"`` and ``"pairs"`` readers;
* `table` -- csv/tsv/parquet (pyarrow, or Python's ``csv`` without it);
* `recbole` -- RecBole atomic files (``.inter`` with its typed header, ``.item``);
* `read` -- `load`, which dispatches to the above, and `as_dataset`;
* `write` -- `save`.

Names with a leading underscore are shared between these modules only; the
public names are those of `fastregen.data`.
"""

from .chunks import DEFAULT_CHUNK_BYTES, iter_int_line_chunks
from .files import FORMATS, detect_format
from .read import as_dataset, load
from .write import save

__all__ = ["load", "save", "detect_format", "iter_int_line_chunks", "as_dataset", "FORMATS", "DEFAULT_CHUNK_BYTES"]
