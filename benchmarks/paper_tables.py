"""The DR4SR paper's Table 3 (KDD'24, arXiv 2405.17795) and UniDS's Tables 1 and 3, as data, for reports to print beside ours.

Copied from ``../shared/reference/paper-tables.md`` (verbatim tables);
significance marks dropped, the one copy error ("00756", CL4SRec DR4SR+
Beauty R@10) read as 0.0756 as specs.md says. Each entry is (R@10, R@20,
N@10, N@20).
"""

from __future__ import annotations

METRICS = ("recall@10", "recall@20", "ndcg@10", "ndcg@20")
DATASETS = ("beauty", "sports", "toys", "yelp")

_ROWS = {
    # model: {row: [beauty..., sports..., toys..., yelp...]} (16 values, 4 per dataset)
    "gru4rec": {
        "base": "0.0204 0.0382 0.0107 0.0150 0.0160 0.0279 0.0085 0.0115 0.0212 0.0357 0.0099 0.0136 0.0215 0.0364 0.0105 0.0143",
        "dr4sr": "0.0252 0.0448 0.0128 0.0177 0.0208 0.0341 0.0102 0.0135 0.0252 0.0418 0.0124 0.0165 0.0235 0.0403 0.0114 0.0156",
        "dr4sr+": "0.0292 0.0473 0.0149 0.0194 0.0223 0.0360 0.0116 0.0151 0.0274 0.0456 0.0134 0.0179 0.0243 0.0415 0.0120 0.0164",
    },
    "sasrec": {
        "base": "0.0553 0.0847 0.0291 0.0368 0.0297 0.0449 0.0156 0.0194 0.0682 0.0951 0.0381 0.0448 0.0289 0.0488 0.0143 0.0193",
        "dr4sr": "0.0595 0.0906 0.0317 0.0395 0.0330 0.0512 0.0174 0.0220 0.0762 0.1049 0.0432 0.0504 0.0304 0.0512 0.0151 0.0202",
        "dr4sr+": "0.0619 0.0919 0.0337 0.0412 0.0349 0.0525 0.0191 0.0235 0.0773 0.1068 0.0453 0.0527 0.0317 0.0523 0.0159 0.0211",
    },
    "fmlp": {
        "base": "0.0602 0.0934 0.0311 0.0394 0.0323 0.0524 0.0166 0.0217 0.0676 0.0982 0.0377 0.0447 0.0297 0.0495 0.0143 0.0197",
        "dr4sr": "0.0635 0.0993 0.0332 0.0421 0.0345 0.0559 0.0177 0.0230 0.0717 0.1061 0.0400 0.0486 0.0316 0.0524 0.0158 0.0210",
        "dr4sr+": "0.0687 0.1056 0.0357 0.0449 0.0384 0.0597 0.0198 0.0253 0.0788 0.1136 0.0437 0.0524 0.0353 0.0582 0.0171 0.0231",
    },
    "gnn": {
        "base": "0.0570 0.0859 0.0311 0.0384 0.0311 0.0476 0.0167 0.0211 0.0697 0.0958 0.0403 0.0469 0.0242 0.0430 0.0118 0.0166",
        "dr4sr": "0.0611 0.0926 0.0324 0.0406 0.0336 0.0525 0.0182 0.0230 0.0736 0.1031 0.0424 0.0498 0.0268 0.0451 0.0129 0.0175",
        "dr4sr+": "0.0637 0.0953 0.0334 0.0414 0.0351 0.0545 0.0189 0.0238 0.0771 0.1082 0.0442 0.0521 0.0272 0.0471 0.0134 0.0184",
    },
    "cl4srec": {
        "base": "0.0653 0.0947 0.0370 0.0441 0.0381 0.0559 0.0215 0.0259 0.0781 0.1075 0.0456 0.0530 0.0322 0.0535 0.0159 0.0212",
        "dr4sr": "0.0732 0.1016 0.0423 0.0495 0.0401 0.0600 0.0227 0.0274 0.0821 0.1113 0.0481 0.0551 0.0344 0.0561 0.0174 0.0229",
        "dr4sr+": "0.0756 0.1062 0.0440 0.0517 0.0448 0.0655 0.0247 0.0299 0.0829 0.1140 0.0489 0.0567 0.0363 0.0598 0.0183 0.0241",
    },
}


def table3(model: str, row: str, dataset: str) -> dict[str, float] | None:
    """Table 3's metrics of ``model`` (``row`` "base", "dr4sr" or "dr4sr+") on ``dataset``; None if absent."""
    values = _ROWS.get(model, {}).get(row)
    if values is None or dataset not in DATASETS:
        return None
    v = [float(x) for x in values.split()]
    i = DATASETS.index(dataset) * 4
    return dict(zip(METRICS, v[i : i + 4]))


#: Table 4, row (C) "end-to-end": SASRec NDCG@20 with the personalizer trained jointly on eq. 8
#: (the weights collapse to 0), per dataset; specs.md §1.
TABLE4_END_TO_END = {"beauty": 0.0026, "sports": 0.0029, "toys": 0.0067, "yelp": 0.0035}


# ---------------------------------------------------------------- UniDS (the uniform data synthesis paper)
# Table 1 (HSTU and LLaMA2Rec columns) and Table 3 (ablations), from
# ../shared/reference/paper-tables.md; significance marks dropped. specs.md §2
# lists their copy errors (KR-Pure/HSTU AUCs equal ML-1M/LLaMA2Rec's; the
# ML-1M and KR-Pure UniDS rows of Table 3 differ from Table 1): kept as printed.
UNIDS_T1_METRICS = ("auc", "mrr", "hr@50", "hr@10", "ndcg@50", "ndcg@10")
_UNIDS_T1 = {
    # (dataset, backbone): {row: "AUC MRR HR@50 HR@10 NG@50 NG@10"}
    ("ml-1m", "hstu"): {"base": ".7861 .1535 .5913 .3271 .2409 .1824", "dr4sr": ".7931 .1540 .5925 .3351 .2434 .1846",
                        "reppad": ".7903 .1559 .5923 .3263 .2430 .1838", "frec": ".7945 .1550 .5905 .3249 .2420 .1829",
                        "unids": ".8081 .1598 .6044 .3372 .2447 .1908"},
    ("ml-1m", "llama"): {"base": ".7351 .1320 .5472 .2806 .2135 .1547", "dr4sr": ".7401 .1366 .5549 .2938 .2182 .1601",
                         "reppad": ".7381 .1297 .5252 .2705 .2065 .1510", "frec": ".7412 .1316 .5301 .2729 .2095 .1527",
                         "unids": ".7485 .1435 .5615 .2957 .2250 .1675"},
}
UNIDS_T3_METRICS = ("auc", "ndcg@10", "hr@10", "mrr")
_UNIDS_T3 = {
    "ml-1m": {"no_tc": ".8030 .1805 .3179 .1538", "no_uf": ".7928 .1842 .3345 .1538",
              "no_ug": ".7863 .1837 .3268 .1534", "unids": ".8081 .1878 .3322 .1565"},
    "kr-pure": {"no_tc": ".7455 .0677 .1322 .0616", "no_uf": ".7399 .0655 .1264 .0622",
                "no_ug": ".7350 .0583 .1146 .0539", "unids": ".7494 .0698 .1359 .0630"},
    "amz-books": {"no_tc": ".7570 .0317 .0569 .0288", "no_uf": ".7528 .0301 .0557 .0272",
                  "no_ug": ".7515 .0271 .0500 .0247", "unids": ".7620 .0357 .0629 .0323"},
}


def unids_table1(dataset: str, backbone: str, row: str) -> dict[str, float] | None:
    """UniDS Table 1: ``row`` ("base", "dr4sr", "reppad", "frec", "unids") of a backbone on a dataset."""
    values = _UNIDS_T1.get((dataset, backbone), {}).get(row)
    return None if values is None else dict(zip(UNIDS_T1_METRICS, map(float, values.split())))


def unids_table3(dataset: str, row: str) -> dict[str, float] | None:
    """UniDS Table 3 (HSTU): ``row`` ("no_tc", "no_uf", "no_ug", "unids") on a dataset."""
    values = _UNIDS_T3.get(dataset, {}).get(row)
    return None if values is None else dict(zip(UNIDS_T3_METRICS, map(float, values.split())))
