"""Readers, writers, format detection and bad input of fastregen.data."""

from __future__ import annotations

import gzip
import importlib.util
import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fastregen import data
from fastregen.data import SequenceDataset, load, save
from fastregen.reference import textio as ref

needs_pyarrow = pytest.mark.skipif(
    importlib.util.find_spec("pyarrow") is None, reason="csv/tsv/parquet need pyarrow (pip install 'fastregen[parquet]')"
)


def write(tmp_path, name, content) -> "Path":  # noqa: F821
    p = tmp_path / name
    p.write_bytes(content.encode() if isinstance(content, str) else content)
    return p


# ------------------------------------------------------------------ real data
@pytest.mark.data
def test_beauty_exact_stats(beauty_path):
    ds = load(beauty_path)
    st_ = data.stats(ds)
    assert (st_.users, st_.items, st_.interactions) == (22_363, 12_101, 198_502)
    assert (st_.min_length, st_.max_length) == (5, 204)
    assert st_.avg_length == pytest.approx(198_502 / 22_363)
    assert ds.meta["format"] == "lines" and ds.item_ids is None


@pytest.mark.data
def test_beauty_matches_reference_and_naive(beauty_path):
    ds = load(beauty_path, chunk_bytes=1 << 16)  # many chunks
    offsets, items, users = ref.read_lines(beauty_path)
    np.testing.assert_array_equal(ds.offsets, offsets)
    np.testing.assert_array_equal(ds.items, items)
    np.testing.assert_array_equal(ds.user_ids, users)
    with open(beauty_path) as f:
        naive = [[int(t) for t in line.split()] for line in f if line.strip()]
    assert ds.to_lists() == [row[1:] for row in naive]


# -------------------------------------------------------------- lines format
def test_lines_basic_and_edge_whitespace(tmp_path):
    p = write(tmp_path, "d.txt", "\ufeff3 1 2 3\r\n\n  7\t4   5 \r\n9 1")
    for chunk in (1, 2, 5, 1 << 20):
        ds = load(p, chunk_bytes=chunk)
        assert ds.to_lists() == [[1, 2, 3], [4, 5], [1]]
    assert ds.user_ids.tolist() == [3, 7, 9]
    assert ds.num_items == 5


@settings(max_examples=40, deadline=None)
@given(
    seqs=st.lists(st.lists(st.integers(1, 50), min_size=1, max_size=8), min_size=1, max_size=20),
    chunk=st.integers(1, 64),
    crlf=st.booleans(),
    threads=st.sampled_from([1, 0, 3]),
)
def test_lines_chunking_does_not_matter(tmp_path_factory, seqs, chunk, crlf, threads):
    eol = "\r\n" if crlf else "\n"
    text = eol.join(f"{u} " + " ".join(map(str, s)) for u, s in enumerate(seqs, 1)) + eol
    p = tmp_path_factory.mktemp("chunks") / "d.txt"
    p.write_text(text, newline="")
    ds = load(p, format="lines", chunk_bytes=chunk, threads=threads)
    assert ds.to_lists() == seqs
    offsets, items, users = ref.read_lines(p)
    np.testing.assert_array_equal(ds.offsets, offsets)
    np.testing.assert_array_equal(ds.items, items)


def test_chunk_line_numbers_in_errors(tmp_path):
    lines = [f"{u} {u} {u + 1}" for u in range(1, 500)] + ["500 1 oops"]
    p = write(tmp_path, "d.txt", "\n".join(lines) + "\n")
    for chunk in (7, 100, 1 << 20):
        with pytest.raises(ValueError, match=re.escape(f"{p}:500: 'oops' is not an integer")):
            load(p, chunk_bytes=chunk)


def test_remap_lines(tmp_path):
    p = write(tmp_path, "d.txt", "1 0 10\n2 10 3000000000\n")
    with pytest.raises(ValueError, match="remap=True"):
        load(p)
    ds = load(p, remap=True)
    assert ds.to_lists() == [[1, 2], [2, 3]]
    assert ds.item_ids.tolist() == [-1, 0, 10, 3_000_000_000]


# ---------------------------------------------------------------- bad input
BAD_LINES = [
    ("1 2 3\n2 4 x\n", r":2: 'x' is not an integer"),
    ("1 2 3\n2 4 5.0\n", r":2: '5.0' is not an integer"),
    ("1 2 3\n2\n", r":2: user 2 has no items"),
    ("1 2 3\n-2 4\n", r":2: negative user id -2"),
    ("1 2 3\n2 4 -5\n", r":2: negative item id -5"),
    ("1 2 3\n\n2 4 0\n", r":3: item id 0 is reserved for padding"),
    ("1 2 3\n2 2147483648\n", r":2: item id 2147483648 exceeds the int32 range"),
    ("1 2 3\n2 99999999999999999999\n", r":2: '99999999999999999999' is out of int64 range"),
    ("1 2 3\n2 4\n1 5\n", r":3: user 1 already has a line \(.*:1\)"),
    ("", r"empty file"),
    ("\n  \n\n", r"empty file"),
]


@pytest.mark.parametrize("content,match", BAD_LINES, ids=range(len(BAD_LINES)))
def test_bad_lines_files(tmp_path, content, match):
    p = write(tmp_path, "bad.txt", content)
    with pytest.raises(ValueError, match=re.escape(str(p)) + ".*" + match if match[0] == ":" else match):
        load(p, format="lines")
    with pytest.raises(ValueError):
        ref.read_lines(p)


def test_duplicate_names_both_lines(tmp_path):
    p = write(tmp_path, "d.txt", "5 1\n6 1\n7 1\n6 2\n5 3\n")
    with pytest.raises(ValueError) as e:
        load(p, format="lines")
    assert f"{p}:4: user 6 already has a line ({p}:2)" in str(e.value)


def test_missing_and_directory(tmp_path):
    with pytest.raises(FileNotFoundError):
        load(tmp_path / "nope.txt")
    with pytest.raises(IsADirectoryError):
        load(tmp_path, format="lines")


def test_bad_arguments(tmp_path):
    p = write(tmp_path, "d.txt", "1 2\n")
    with pytest.raises(ValueError, match="unknown format"):
        load(p, format="json")
    with pytest.raises(ValueError, match="only apply to csv"):
        load(p, user="u")
    with pytest.raises(ValueError, match="chunk_bytes"):
        load(p, chunk_bytes=0)
    with pytest.raises(ValueError, match="threads must be >= 0"):
        load(p, threads=-1)


@pytest.mark.parametrize("threads", [1, 2, 4])
@pytest.mark.parametrize("fmt", ["lines", "pairs"])
def test_threads_do_not_change_the_result(tmp_path, threads, fmt):
    ds = data.synthetic("demo", n_users=3000, seed=5)
    p = tmp_path / f"d.{fmt}.txt"
    save(ds, p, format=fmt)
    got = load(p, format=fmt, threads=threads, chunk_bytes=1 << 16)
    np.testing.assert_array_equal(got.items, ds.items)
    np.testing.assert_array_equal(got.offsets, ds.offsets)
    bad = p.read_bytes().replace(b"\n", b"\n7 x\n", 1)  # a bad line 2 in a multi-chunk file
    p.write_bytes(bad)
    with pytest.raises(ValueError, match=r":2: 'x' is not an integer"):
        load(p, format=fmt, threads=threads, chunk_bytes=1 << 16)


# -------------------------------------------------------------- pairs format
def test_pairs_groups_and_sorts_stably(tmp_path):
    p = write(tmp_path, "p.txt", "2 5 30\n1 7 10\n2 6 10\n1 8 10\n2 9 30\n")
    ds = load(p, format="pairs")
    assert ds.user_ids.tolist() == [1, 2]
    # user 2: item 6 (t=10) first, then 5 and 9 in file order (a tie at t=30)
    assert ds.to_lists() == [[7, 8], [6, 5, 9]]
    assert ds.timestamps.tolist() == [10, 10, 10, 30, 30]


def test_pairs_without_time_keep_file_order(tmp_path):
    p = write(tmp_path, "p.txt", "2 5\n1 7\n2 6\n")
    assert load(p, format="pairs").to_lists() == [[7], [5, 6]]


@pytest.mark.parametrize(
    "content,match",
    [
        ("1 2\n1 3 4\n", r":2: expected 2 tokens like line 1, got 3"),
        ("1 2 3 4\n", r":1: expected 'user item' or 'user item timestamp', got 4"),
        ("1 2\n-1 3\n", r":2: negative user id -1"),
        ("1 2\n1 0\n", r":2: item id 0 is reserved"),
        ("\n\n", r"empty file"),
    ],
)
def test_bad_pairs(tmp_path, content, match):
    p = write(tmp_path, "p.txt", content)
    with pytest.raises(ValueError, match=match):
        load(p, format="pairs")


def test_auto_detection(tmp_path):
    pairs = write(tmp_path, "a.txt", "1 2\n1 3\n2 4\n")
    lines = write(tmp_path, "b.txt", "1 2\n2 3\n3 4 5\n")
    ones = write(tmp_path, "c.txt", "1 2\n2 3\n")  # ambiguous: read as lines
    assert data.detect_format(pairs) == "pairs" and load(pairs).to_lists() == [[2, 3], [4]]
    assert data.detect_format(lines) == "lines"
    assert data.detect_format(ones) == "lines" and load(ones).to_lists() == [[2], [3]]
    assert data.detect_format(tmp_path / "x.csv") == "csv"
    assert data.detect_format(tmp_path / "x.inter") == "recbole"
    assert data.detect_format(tmp_path / "x.inter.gz") == "recbole"
    assert data.detect_format(tmp_path / "x.parquet") == "parquet"


def test_gzip_text(tmp_path):
    p = tmp_path / "d.txt.gz"
    with gzip.open(p, "wb") as f:
        f.write(b"1 2 3\n2 4\n")
    assert load(p, chunk_bytes=3).to_lists() == [[2, 3], [4]]


# --------------------------------------------------------------------- tables
@pytest.fixture(params=["pyarrow", "python"])
def csv_backend(request, monkeypatch):
    """CSV/TSV through pyarrow, and through the pure-Python fallback used without it."""
    import fastregen.data.io.table as table_mod

    if request.param == "pyarrow":
        if importlib.util.find_spec("pyarrow") is None:
            pytest.skip("pyarrow is not installed")
    else:
        monkeypatch.setattr(table_mod, "_have_pyarrow", lambda: False)
    return request.param


def test_csv_string_ids_and_timestamps(tmp_path, csv_backend):
    p = write(tmp_path, "d.csv", "uid,asin,rating,ts\nb,X,5,3\na,Y,4,1\nb,Z,3,1\nb,Y,1,3\n")
    ds = load(p, user="uid", item="asin", timestamp="ts")
    assert ds.user_ids.tolist() == ["a", "b"]
    assert ds.item_ids.tolist() == ["", "X", "Y", "Z"]
    # b: Z (t=1), then X and Y tied at t=3 in file order
    assert [[ds.item_ids[i] for i in s] for s in ds.to_lists()] == [["Y"], ["Z", "X", "Y"]]
    assert ds.timestamps.tolist() == [1, 1, 3, 3]


def test_tsv_default_columns_and_recbole_header(tmp_path, csv_backend):
    p = write(tmp_path, "d.inter", "user_id:token\titem_id:token\ttimestamp:float\n1\t10\t2.5\n1\t20\t1.5\n2\t10\t0\n")
    ds = load(p, format="tsv")  # a RecBole file read as a plain table: the type suffixes ignored
    assert ds.item_ids.tolist() == [-1, 10, 20]
    assert ds.to_lists() == [[2, 1], [1]]
    assert ds.timestamps.tolist() == [1, 2, 0]


def test_csv_no_remap_keeps_ids(tmp_path, csv_backend):
    p = write(tmp_path, "d.csv", "user_id,item_id\n1,5\n1,3\n")
    ds = load(p, remap=False)
    assert ds.to_lists() == [[5, 3]] and ds.item_ids is None
    p0 = write(tmp_path, "z.csv", "user_id,item_id\n1,0\n")
    with pytest.raises(ValueError, match=r"column 'item_id' \(item\) holds 0 at line 2"):
        load(p0, remap=False)


@pytest.mark.parametrize(
    "content,kwargs,match",
    [
        ("u,i\n1,2\n", {}, r"cannot find the user column"),
        ("user_id,item_id\n1,2\n", {"timestamp": "t"}, r"no timestamp column 't'; the columns are \['user_id', 'item_id'\]"),
        ("user_id,item_id\n1,2\n2,\n", {}, r"column 'item_id' \(item\) is empty at line 3"),
        ("user_id,item_id\n1,2\n-2,3\n", {}, r"column 'user_id' \(user\) holds the negative id -2 at line 3"),
        ("user_id,item_id\n1,2.5\n", {}, r"holds floats"),
        ("user_id,item_id,ts\n1,2,x\n", {}, r"must be numeric"),
        ("user_id,item_id\n", {}, r"empty file"),
        ("", {}, r"empty file"),
        ("user_id,item_id\n1,2,3\n", {}, r"(?i)expected 2 columns"),
        ("user_id,item_id\n1,2\n", {"user": "item_id"}, r"same column"),
    ],
)
def test_bad_tables(tmp_path, content, kwargs, match, csv_backend):
    p = write(tmp_path, "bad.csv", content)
    with pytest.raises(ValueError, match=match) as e:
        load(p, **kwargs)
    assert str(p) in str(e.value)


# -------------------------------------------------------------------- writers
@pytest.mark.parametrize("name,fmt", [("o.txt", "lines"), ("o.txt.gz", "lines"), ("p.txt", "pairs"),
                                      pytest.param("o.csv", "csv", marks=needs_pyarrow),
                                      pytest.param("o.tsv", "tsv", marks=needs_pyarrow),
                                      pytest.param("o.parquet", "parquet", marks=needs_pyarrow)])
def test_roundtrip(tmp_path, name, fmt):
    ds = data.synthetic("demo", n_users=50, n_items=40, n_patterns=3, timestamps=True, seed=3)
    out = tmp_path / name
    save(ds, out, format=fmt)
    back = load(out, format=fmt, **({} if fmt in ("lines", "pairs") else {"remap": False}))
    assert back.to_lists() == ds.to_lists()
    assert back.user_ids.tolist() == ds.user_ids.tolist()
    if fmt not in ("lines",):
        assert back.timestamps.tolist() == ds.timestamps.tolist()


def test_save_lines_empty_sequences(tmp_path):
    ds = SequenceDataset.from_lists([[1, 2], [], [3]], user_ids=np.array([10, 11, 12]))
    out = tmp_path / "o.txt"
    with pytest.raises(ValueError, match=r"sequence 1 \(user 11\) is empty"):
        save(ds, out)
    assert not out.exists() and not list(tmp_path.iterdir())  # atomic: nothing left behind
    save(ds, out, drop_empty=True)
    assert out.read_text() == "10 1 2\n12 3\n"


def test_save_is_atomic_on_failure(tmp_path, monkeypatch):
    out = tmp_path / "o.txt"
    out.write_text("old\n")
    from fastregen import _core

    def boom(*a, **k):
        raise RuntimeError("disk full")

    monkeypatch.setattr(_core, "format_int_rows", boom)
    with pytest.raises(RuntimeError):
        save(SequenceDataset.from_lists([[1]]), out)
    assert out.read_text() == "old\n" and [p.name for p in tmp_path.iterdir()] == ["o.txt"]


def test_save_many_chunks_matches_reference(tmp_path, monkeypatch):
    import fastregen.data.io.write as write_mod

    monkeypatch.setattr(write_mod, "_ROWS_PER_WRITE", 7)
    ds = SequenceDataset.from_lists([[1, 2, 3], [4] * 20, [5], [6, 7]], user_ids=np.array([4, 3, 2, 1]))
    save(ds, tmp_path / "o.txt")
    expected = "".join(f"{u} " + " ".join(map(str, s)) + "\n" for u, s in zip([4, 3, 2, 1], ds.to_lists()))
    assert (tmp_path / "o.txt").read_text() == expected


@settings(max_examples=30, deadline=None)
@given(
    rows=st.lists(st.tuples(st.integers(0, 6), st.integers(1, 30), st.integers(0, 5)), min_size=1, max_size=40),
    chunk=st.integers(1, 50),
)
def test_pairs_chunking_and_order(tmp_path_factory, rows, chunk):
    p = tmp_path_factory.mktemp("pairs") / "p.txt"
    p.write_text("".join(f"{u} {i} {t}\n" for u, i, t in rows))
    ds = load(p, format="pairs", chunk_bytes=chunk)
    users = sorted({u for u, _, _ in rows})
    # the definition: per user, a stable sort of its rows by timestamp
    want = [[i for _, i, _ in sorted([r for r in rows if r[0] == u], key=lambda r: r[2])] for u in users]
    assert ds.user_ids.tolist() == users and ds.to_lists() == want


def test_streaming_memory_is_bounded(tmp_path):
    """Loading must not need a multiple of the file in memory (checked in a fresh process)."""
    import subprocess
    import sys

    p = tmp_path / "big.txt"
    ds = data.synthetic("demo", n_users=200_000, n_items=5000, seed=0)
    save(ds, p)
    size = p.stat().st_size
    code = (
        "import resource, sys; from fastregen.data import load\n"
        "base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        f"ds = load({str(p)!r}, chunk_bytes=1 << 20)\n"
        "peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "print((peak - base) * 1024, ds.num_interactions)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    grown, n = int(out[0]), int(out[1])
    assert n == ds.num_interactions
    final = 4 * n + 16 * len(ds)  # items int32 + offsets and user ids int64
    assert grown < 2.5 * final and grown < size, (grown, final, size)


@needs_pyarrow
def test_parquet_string_users_and_datetimes(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    when = np.array(["2020-01-02T00:00:00.5", "2020-01-01T00:00:00.7", "2020-01-01T00:00:00.2"], dtype="datetime64[ms]")
    pq.write_table(pa.table({"u": ["x", "y", "x"], "i": [5, 6, 7], "when": pa.array(when)}), tmp_path / "t.parquet")
    ds = load(tmp_path / "t.parquet", user="u", item="i", timestamp="when")
    assert ds.user_ids.tolist() == ["x", "y"] and ds.item_ids.tolist() == [-1, 5, 6, 7]
    assert ds.to_lists() == [[3, 1], [2]]
    assert ds.timestamps.tolist() == [1577836800, 1577923200, 1577836800]
    with pytest.raises(ValueError, match=r"t.parquet: no item column 'item_id'"):
        load(tmp_path / "t.parquet", user="u", item="item_id")


def test_sink_falls_back_to_pieces():
    from fastregen.data.io.chunks import _Sink

    sink = _Sink(np.int32, 3)
    sink.append(np.array([1, 2], dtype=np.int64))
    assert sink.room(2) is None and sink.room(1) is not None
    sink.append(np.array([3, 4, 5]))
    out = sink.finish()
    assert out.dtype == np.int32 and out.tolist() == [1, 2, 3, 4, 5]


@pytest.mark.parametrize("fmt", ["csv", "tsv"])
def test_csv_roundtrip_without_pyarrow(tmp_path, fmt, monkeypatch):
    import fastregen.data.io.table as table_mod

    monkeypatch.setattr(table_mod, "_have_pyarrow", lambda: False)
    ds = data.synthetic("demo", n_users=30, n_items=40, n_patterns=3, timestamps=True, seed=4)
    save(ds, tmp_path / f"o.{fmt}")
    back = load(tmp_path / f"o.{fmt}", remap=False)
    assert back.to_lists() == ds.to_lists() and back.timestamps.tolist() == ds.timestamps.tolist()


# ------------------------------------------------------ hardening (issue 21)
def _serve_fifo(tmp_path, payload: bytes, name="in.fifo"):
    """A FIFO that a thread fills with ``payload`` (in small writes) once a reader opens it."""
    import os
    import threading

    fifo = tmp_path / name
    os.mkfifo(fifo)

    def feed():
        with open(fifo, "wb") as f:
            for k in range(0, len(payload), 4096):
                f.write(payload[k : k + 4096])

    t = threading.Thread(target=feed, daemon=True)
    t.start()
    return fifo, t


@pytest.mark.parametrize("fmt", ["auto", "lines"])
def test_pipe_input_loses_nothing(tmp_path, fmt, monkeypatch):
    # Before: format sniffing consumed the first 64 KiB of the pipe, then the
    # path was opened again (the data read on from there), and a pipe's size
    # of 0 made the reader fetch 1 byte at a time.
    import fastregen.data.io.files as io_mod

    rows = [[u] + list(range(u % 50 + 1, u % 50 + 8)) for u in range(1, 30_001)]  # ~700 KB
    payload = "".join(" ".join(map(str, r)) + "\n" for r in rows).encode()
    assert len(payload) > 10 * io_mod._SNIFF_BYTES
    reads = []
    real = io_mod._TextInput.readinto
    monkeypatch.setattr(io_mod._TextInput, "readinto", lambda self, v: reads.append(len(v)) or real(self, v))
    fifo, t = _serve_fifo(tmp_path, payload)
    ds = load(fifo, format=fmt, chunk_bytes=1 << 16)
    t.join()
    assert ds.to_lists() == [r[1:] for r in rows]
    assert ds.user_ids.tolist() == [r[0] for r in rows]
    assert max(reads) == 1 << 16 and len(reads) < 100


def test_pipe_input_pairs_and_stdin(tmp_path):
    # pairs need the sniffed lines too: every interaction must survive
    pairs = "".join(f"{u} {i}\n" for u in range(1, 4001) for i in (u % 7 + 1, u % 5 + 9))
    fifo, t = _serve_fifo(tmp_path, pairs.encode())
    ds = load(fifo)
    t.join()
    assert ds.meta["format"] == "pairs" and ds.num_interactions == 8000
    from conftest import run_python

    r = run_python("from fastregen import data; ds = data.load('/dev/stdin'); print(len(ds), ds.num_interactions)",
                   timeout=60, input=pairs)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["4000", "8000"]


@needs_pyarrow
def test_pipe_input_to_a_table_reader_is_refused(tmp_path):
    fifo, t = _serve_fifo(tmp_path, b"user_id,item_id\n1,2\n", name="in.csv")
    with pytest.raises(ValueError, match=r"in.csv: csv, tsv and parquet input must be a regular file"):
        load(fifo)
    with open(fifo, "rb") as f:  # let the writer finish
        f.read()
    t.join()


def test_cr_only_line_endings_are_lines(tmp_path):
    # Before: '1 2 3\r2 4 5\r' was one user with items 2 3 2 4 5.
    p = write(tmp_path, "mac.txt", b"1 2 3\r2 4 5\r\r3 6\r")
    ds = load(p)
    assert ds.to_lists() == [[2, 3], [4, 5], [6]] and ds.user_ids.tolist() == [1, 2, 3]
    assert load(p, chunk_bytes=4).to_lists() == [[2, 3], [4, 5], [6]]
    assert load(write(tmp_path, "pairs.txt", b"1 2\r1 3\r2 4\r")).to_lists() == [[2, 3], [4]]


def test_carriage_return_inside_a_line_is_an_error(tmp_path):
    p = write(tmp_path, "mixed.txt", b"1 2 3\n2 4\r5 6\n")
    with pytest.raises(ValueError, match=r"mixed.txt:2: a carriage return \(\\r\) inside a line"):
        load(p)
    # CRLF, trailing CRs and a final lone CR join nothing: still fine
    assert load(write(tmp_path, "ok.txt", b"1 2 3\r\n2 4 \r\r\n3 5\r")).to_lists() == [[2, 3], [4], [5]]


def test_broken_gzip_is_a_clear_error(tmp_path):
    body = gzip.compress(b"".join(b"%d 1 2 3\n" % u for u in range(1, 5000)))
    trunc = write(tmp_path, "t.txt.gz", body[: len(body) // 2])
    with pytest.raises(ValueError, match=r"t.txt.gz: the gzip data ends early .* the file is truncated"):
        load(trunc)
    corrupt = write(tmp_path, "c.txt.gz", body[:20] + b"\x00" * 64 + body[84:])
    with pytest.raises(ValueError, match=r"c.txt.gz: not valid gzip data"):
        load(corrupt)
    fake = write(tmp_path, "f.txt.gz", b"1 2 3\n")
    with pytest.raises(ValueError, match=r"f.txt.gz: not valid gzip data .*drop the .gz suffix"):
        load(fake)


@needs_pyarrow
def test_corrupt_parquet_is_a_clear_error(tmp_path):
    p = write(tmp_path, "x.parquet", b"PAR1 not really")
    with pytest.raises(ValueError, match=r"x.parquet: not a readable parquet file"):
        load(p)


def test_table_cells_that_are_not_utf8(tmp_path, csv_backend):
    p = write(tmp_path, "b.csv", b"user_id,item_id\n1,a\n2,b\n3,\xff\xfeq\n")
    with pytest.raises(ValueError, match=r"b.csv: line 4: not UTF-8 text \(byte b'\\xff' at column 3\)"):
        load(p)


def test_duplicate_table_columns_are_refused(tmp_path, csv_backend):
    p = write(tmp_path, "d.csv", "user_id,item_id,user_id\n1,2,3\n")
    with pytest.raises(ValueError, match=r"d.csv: the header has 2 columns named 'user_id' \(columns 1, 3\)"):
        load(p)
    p = write(tmp_path, "d.inter", "user_id:token\titem_id:token\titem_id:float\n1\t2\t3\n")
    with pytest.raises(ValueError, match=r"columns named 'item_id' \(columns 2, 3\)"):
        load(p, format="tsv")
    # a duplicate that is not read is harmless
    assert load(write(tmp_path, "ok.csv", "user_id,item_id,x,x\n1,2,3,4\n")).to_lists() == [[1]]


def test_uint64_ids_are_reported_and_remapped_exactly(tmp_path, csv_backend):
    big = 2**64 - 1
    p = write(tmp_path, "u.csv", f"user_id,item_id\n{big},{big}\n{big},5\n7,{2**63}\n")
    with pytest.raises(ValueError, match=rf"u.csv: column 'item_id' \(item\) holds {big} at line 2"):
        load(p, remap=False)
    ds = load(p)
    assert ds.item_ids.tolist() == [-1, 5, 2**63, big]
    assert ds.user_ids.tolist() == [7, big] and ds.to_lists() == [[2], [3, 1]]


@needs_pyarrow
def test_uint64_parquet_ids(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    big = 2**64 - 2
    p = tmp_path / "u.parquet"
    pq.write_table(pa.table({"user_id": pa.array([1, 1], pa.uint64()),
                             "item_id": pa.array([big, 3], pa.uint64())}), p)
    with pytest.raises(ValueError, match=rf"holds {big} at row 0"):  # before: a negative number
        load(p, remap=False)
    assert load(p).item_ids.tolist() == [-1, 3, big]


def test_sparse_ids_are_refused_before_allocating(tmp_path):
    # Before: '1 2\n2 2147483647\n' loaded, then mining asked for GiBs and
    # training for 512 GiB.
    p = write(tmp_path, "s.txt", "1 2\n2 2147483647\n")
    with pytest.raises(ValueError, match=r"s.txt: item ids are sparse: the largest is 2,147,483,647 but only 2 "
                                         r"distinct items occur.*512.0 GiB.*pass remap=True"):
        load(p)
    ds = load(p, remap=True)
    assert ds.to_lists() == [[1], [2]] and ds.item_ids.tolist() == [-1, 2, 2**31 - 1]
    # dense ids above 2^20 are fine; ids up to 2^20 always are
    n = (1 << 20) + 10
    dense = write(tmp_path, "d.txt", "1 " + " ".join(map(str, range(1, n + 1))) + "\n")
    assert load(dense).num_items == n
    assert load(write(tmp_path, "small.txt", f"1 1\n2 {1 << 20}\n")).num_items == 1 << 20
    # the library refuses such a dataset before its kernels allocate
    from fastregen import entropy, patterns

    sparse = SequenceDataset.from_lists([[1, 2**31 - 1], [1, 2**31 - 1]])
    for call in (lambda: patterns.mine_patterns(sparse), lambda: patterns.window_counts(sparse, 2, 1),
                 lambda: entropy.MarkovModel(1).fit(sparse), lambda: patterns.item_entropies(sparse)):
        with pytest.raises(ValueError, match="item ids are sparse.*fastregen.data.remap"):
            call()
