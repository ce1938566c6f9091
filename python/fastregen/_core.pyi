"""Type stubs for the compiled core (private; use the fastregen.* API)."""

import numpy as np
import numpy.typing as npt

__version__: str

def have_openmp() -> bool: ...
def max_threads() -> int: ...

# ----- textio (data layer) -----
def tokenize_int_lines(
    data: bytes | bytearray | memoryview,
    n_threads: int = 0,
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], tuple[int, bytes, str] | None]:
    """Tokenize whitespace-separated int64 lines: (counts per line, tokens, first error or None)."""

def parse_user_lines(
    data: bytes | bytearray | memoryview,
    n_threads: int = 0,
    out: npt.NDArray[np.int32] | None = None,
) -> tuple[
    npt.NDArray[np.int64] | None,
    npt.NDArray[np.int64] | None,
    npt.NDArray[np.int64] | None,
    npt.NDArray[np.int32] | int | None,
    int,
    tuple[int, bytes, str] | None,
]:
    """Parse and validate ``user item item ...`` lines: (users, lines, lengths, items, n_lines, error).

    With ``out`` the items go to ``out[:k]`` and ``k`` replaces the items array.
    """

def format_int_rows(
    offsets: npt.NDArray[np.int64],
    values: npt.NDArray[np.int64],
    row_begin: int,
    row_end: int,
    sep: str = " ",
) -> bytes:
    """Rows [row_begin, row_end) of a CSR int64 array as text lines joined by ``sep``."""

def gather_ranges(
    values: npt.NDArray[np.int32] | npt.NDArray[np.int64],
    starts: npt.NDArray[np.int64],
    ends: npt.NDArray[np.int64],
    threads: int = 0,
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int32] | npt.NDArray[np.int64]]:
    """``values[starts[k]:ends[k]]`` concatenated: (offsets int64 (n + 1,), gathered, dtype of values)."""
# ----- end textio -----

# ----- mining -----
def mine_patterns(
    offsets: npt.NDArray[np.int64],
    items: npt.NDArray[np.int32],
    max_span: int,
    min_support: int,
    min_len: int,
    max_len: int,
    threads: int = 0,
    progress: npt.NDArray[np.int64] | None = None,
    max_patterns: int = 0,
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int32], npt.NDArray[np.int64]]: ...
def window_counts(
    offsets: npt.NDArray[np.int64],
    items: npt.NDArray[np.int32],
    window: int,
    min_count: int,
    threads: int = 0,
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int32], npt.NDArray[np.int64]]: ...
def pretrain_pairs(
    offsets: npt.NDArray[np.int64],
    items: npt.NDArray[np.int32],
    pattern_offsets: npt.NDArray[np.int64],
    pattern_items: npt.NDArray[np.int32],
    span: int,
    max_per_sequence: int,
    seed: int,
    threads: int = 0,
    progress: npt.NDArray[np.int64] | None = None,
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]: ...
# ----- end mining -----

# ----- entropy -----
def lz_lambda_sums(
    offsets: npt.NDArray[np.int64], items: npt.NDArray[np.int32], threads: int = 0, method: int = 0
) -> npt.NDArray[np.int64]: ...
def real_entropy(
    offsets: npt.NDArray[np.int64], items: npt.NDArray[np.int32], base: float = 2.0, threads: int = 0
) -> npt.NDArray[np.float64]: ...
def n_distinct(
    offsets: npt.NDArray[np.int64], items: npt.NDArray[np.int32], threads: int = 0
) -> npt.NDArray[np.int64]: ...
def item_entropies(
    offsets: npt.NDArray[np.int64], items: npt.NDArray[np.int32], num_items: int
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]: ...

class MarkovModel:
    def __init__(self, order: int, num_items: int) -> None: ...
    def fit(self, offsets: npt.NDArray[np.int64], items: npt.NDArray[np.int32]) -> None: ...
    def prob(
        self,
        ctx_offsets: npt.NDArray[np.int64],
        ctx_items: npt.NDArray[np.int32],
        next: npt.NDArray[np.int32],
        threads: int = 0,
    ) -> npt.NDArray[np.float64]: ...
    @property
    def order(self) -> int: ...
    @property
    def num_items(self) -> int: ...
    @property
    def num_tokens(self) -> int: ...
    @property
    def fitted(self) -> bool: ...
    def context_counts(self) -> list[int]: ...

def mine_entropy_patterns(
    offsets: npt.NDArray[np.int64],
    items: npt.NDArray[np.int32],
    num_items: int,
    theta: float,
    min_count: int,
    max_len: int,
    markov: MarkovModel | None,
    probs: npt.NDArray[np.float64] | None,
    scorer: object | None,
    threads: int = 0,
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int32], npt.NDArray[np.float64], npt.NDArray[np.int64]]: ...
def segment(
    offsets: npt.NDArray[np.int64],
    items: npt.NDArray[np.int32],
    pat_offsets: npt.NDArray[np.int64],
    pat_items: npt.NDArray[np.int32],
    threads: int = 0,
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.int64]]: ...
# ----- end entropy -----

# ----- ranks (evaluation) -----
def rank_counts(
    scores: npt.NDArray[np.float32] | npt.NDArray[np.float64],
    targets: npt.NDArray[np.int64],
    thresholds: npt.NDArray[np.float32] | npt.NDArray[np.float64],
    ex_offsets: npt.NDArray[np.int64],
    ex_items: npt.NDArray[np.int64],
    c0: int,
    n_columns: int,
    lo: npt.NDArray[np.float32] | npt.NDArray[np.float64] | None = None,
    threads: int = 0,
) -> tuple[
    npt.NDArray[np.int64],
    npt.NDArray[np.int64],
    npt.NDArray[np.int64],
    npt.NDArray[np.float32] | npt.NDArray[np.float64],
]:
    """Per-row counts of a block [c0, c0 + width) of scores: (count, excluded, band_rows, band_values).

    ``count[r] = #{j in block: j != 0, j != targets[r], j not excluded: scores[r, j - c0] >= thresholds[r]}``;
    see ``fastregen.reference.ranks.rank_counts``.
    """

# ----- amx ranks (two-pass exact full ranking; csrc/amx_ranks.hpp) -----
class PackedItems:
    """An item table in the AMX tile layout and its items' norms (from `pack_items`)."""
    @property
    def n_items(self) -> int: ...
    @property
    def dim(self) -> int: ...

def amx_available() -> bool:
    """Whether `amx_rank_counts` can run here (AMX-BF16 CPU, tile state granted by the OS)."""

def pack_items(table: npt.NDArray[np.float32], threads: int = 0) -> PackedItems:
    """The item table (n_items, dim) float32 in the tile layout of `amx_rank_counts`."""

def amx_rank_counts(
    hidden: npt.NDArray[np.float32],
    table: npt.NDArray[np.float32],
    packed: PackedItems,
    targets: npt.NDArray[np.int64],
    ex_offsets: npt.NDArray[np.int64],
    ex_items: npt.NDArray[np.int64],
    threads: int = 0,
    max_rank: int | None = None,
    bounds: npt.NDArray[np.int64] | None = None,
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], int, int, int]:
    """Exact full-ranking counts: (count, excluded, rechecked pairs, users ranked exactly throughout,
    scanned pairs); with ``max_rank`` m, ``min(count, m)``, items scanned a segment (``bounds``) at a time
    and each user dropped once m items beat its target (``fastregen.reference.ranks.capped_rank_counts``)."""

def exact_scores(
    hidden: npt.NDArray[np.float32],
    table: npt.NDArray[np.float32],
    rows: npt.NDArray[np.int64],
    items: npt.NDArray[np.int64],
) -> npt.NDArray[np.float32]:
    """The float32 fma chain of each pair; see ``fastregen.reference.ranks.fma_scores``."""
# ----- end ranks -----
