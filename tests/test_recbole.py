"""RecBole atomic files: the .inter reader (ids, time order, timestamps), item categories, errors, writing."""

from __future__ import annotations

import numpy as np
import pytest

from fastregen import data
from fastregen.data import datasets

INTER = (
    "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
    "7\t50\t3\t300\n"
    "3\t10\t4\t200\n"
    "7\t20\t1\t100\n"
    "3\t30\t5\t200\n"   # tie with the line above: file order kept
    "7\t10\t2\t250.5\n"
    "3\t20\t4\t100\n"
)
ITEM = (
    "item_id:token\tmovie_title:token_seq\tclass:token_seq\n"
    "10\tA\tDrama Comedy\n"
    "20\tB\tAction\n"
    "50\tC\tComedy\n"
    "99\tD\tWar\n"      # not in the interactions
)


def write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_reads_ids_time_order_and_timestamps(tmp_path):
    ds = data.load(write(tmp_path, "d.inter", INTER), format="recbole")
    assert ds.meta["format"] == "recbole"
    assert ds.user_ids.tolist() == [3, 7]
    originals = [[ds.item_ids[i] for i in s] for s in ds.to_lists()]
    assert [[int(x) for x in s] for s in originals] == [[20, 10, 30], [20, 10, 50]]
    assert ds.timestamps.tolist() == [100, 200, 200, 100, 250, 300]  # floats floored, ordered by exact value
    assert "item_category" not in ds.meta  # no .item file beside it


def test_item_categories_from_the_item_file(tmp_path):
    write(tmp_path, "d.item", ITEM)
    ds = data.load(write(tmp_path, "d.inter", INTER), format="recbole")
    names = ds.meta["categories"]
    assert names == ["Action", "Comedy", "Drama"]  # item 99 is not in the data
    cat = ds.meta["item_category"]
    assert cat.shape == (ds.num_items + 1,) and cat[0] == 0
    by_token = {int(ds.item_ids[i]): (names[cat[i] - 1] if cat[i] else None) for i in range(1, ds.num_items + 1)}
    assert by_token == {10: "Drama", 20: "Action", 30: None, 50: "Comedy"}
    from fastregen.data.io.recbole import load_recbole

    assert "item_category" not in load_recbole(tmp_path / "d.inter", categories=False).meta


def test_bad_headers_and_options(tmp_path):
    p = write(tmp_path, "a.inter", "user_id\titem_id:token\n1\t2\n")
    with pytest.raises(ValueError, match=r"header column 'user_id' has no ':type' suffix"):
        data.load(p, format="recbole")
    p = write(tmp_path, "b.inter", "user_id:token\titem_id:int\n1\t2\n")
    with pytest.raises(ValueError, match=r"header column 'item_id:int' has type 'int'"):
        data.load(p, format="recbole")
    p = write(tmp_path, "c.inter", "uid:token\titem_id:token\n1\t2\n")
    with pytest.raises(ValueError, match=r"no user column 'user_id'.*pass user="):
        data.load(p, format="recbole")
    assert data.load(p, format="recbole", user="uid").num_interactions == 1
    p = write(tmp_path, "d.inter", "user_id:token\titem_id:token\ttimestamp:token\n1\t2\tmonday\n")
    with pytest.raises(ValueError, match=r"timestamp column 'timestamp' has type 'token', expected float"):
        data.load(p, format="recbole")
    with pytest.raises(ValueError, match="sep and remap=False do not apply"):
        data.load(p, format="recbole", remap=False)
    with pytest.raises(FileNotFoundError):
        data.load(tmp_path / "missing.inter", format="recbole")
    from fastregen.data.io.recbole import load_recbole

    with pytest.raises(ValueError, match=r"categories='class' asks for .*e.item, which does not exist"):
        load_recbole(write(tmp_path, "e.inter", INTER), categories="class")


def test_write_and_read_back(tmp_path):
    ds = data.load(write(tmp_path, "d.inter", INTER), format="recbole")
    out = tmp_path / "out.inter"
    data.save(ds, out, format="recbole")
    assert out.read_text().splitlines()[0] == "user_id:token\titem_id:token\ttimestamp:float"
    back = data.load(out, format="recbole")
    assert back.to_lists() == ds.to_lists() and back.timestamps.tolist() == ds.timestamps.tolist()


def test_concat_carries_timestamps_only_when_all_have_them():
    a = data.SequenceDataset.from_lists([[1, 2]], timestamps=np.array([5, 6]))
    b = data.SequenceDataset.from_lists([[3]], timestamps=np.array([7]))
    c = data.SequenceDataset.from_lists([[3]])
    assert data.concat(a, b).timestamps.tolist() == [5, 6, 7]
    assert data.concat(a, c).timestamps is None


def test_ml100k_from_the_recbole_wheel(tmp_path):
    try:
        path = datasets.fetch("ml-100k")
    except datasets.FetchError as err:
        pytest.skip(f"ml-100k could not be fetched (offline?): {err}")
    ds = data.load(path, format="recbole")
    assert (len(ds), ds.num_items, ds.num_interactions) == (943, 1682, 100_000)
    assert ds.timestamps is not None and ds.meta["item_category"].shape == (1683,)
    users = np.repeat(np.arange(len(ds)), ds.lengths)
    same = users[1:] == users[:-1]
    assert np.all(np.diff(ds.timestamps)[same] >= 0)
    with pytest.raises(ValueError, match="unknown dataset 'ml-1m'"):
        datasets.fetch("ml-1m")
