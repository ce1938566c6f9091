"""The core fuzzer (tests/fuzz_core.py), bounded for the suite (issue 21).

Runs in its own process, so a crash of the core is a failed test and not the
end of the session. About 15,000 cases (~40 s on the 2-core CI machine);
FASTREGEN_FUZZ_EXAMPLES changes that, tools/fuzz.sh runs 100,000 and
tools/asan.sh runs them under AddressSanitizer + UBSan.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from fuzz_core import TARGETS

EXAMPLES = int(os.environ.get("FASTREGEN_FUZZ_EXAMPLES", "15000"))


def test_fuzz_every_core_entry_point_against_the_reference():
    script = Path(__file__).with_name("fuzz_core.py")
    r = subprocess.run([sys.executable, str(script), "--examples", str(EXAMPLES), "--seed", "0"],
                       capture_output=True, text=True, timeout=900)
    records = [json.loads(line) for line in r.stdout.splitlines() if line.startswith("{")]
    findings = [rec for rec in records if rec.get("failure")]
    assert r.returncode == 0 and not findings, (r.returncode, r.stderr[-3000:], findings)
    targets = [rec for rec in records if "target" in rec]
    assert [rec["target"] for rec in targets] == list(TARGETS)  # every entry point ran
    assert all(rec["cases"] >= EXAMPLES // len(TARGETS) for rec in targets)
    assert records[-1]["total"] >= EXAMPLES - len(TARGETS)


def test_every_core_function_is_a_fuzz_target():
    # A new entry point of the core must get a fuzz target.
    from fastregen import _core

    covered = {"tokenize_int_lines", "parse_user_lines", "format_int_rows", "gather_ranges", "mine_patterns",
               "window_counts", "pretrain_pairs", "lz_lambda_sums", "real_entropy", "n_distinct",
               "item_entropies", "MarkovModel", "mine_entropy_patterns", "segment", "rank_counts",
               "amx_rank_counts", "pack_items", "exact_scores", "PackedItems", "ragged_attention_forward",
               "ragged_attention_backward", "apply_dropout"}
    info_only = {"have_openmp", "max_threads", "amx_available"}
    public = {n for n in dir(_core) if not n.startswith("_")}
    assert public - info_only == covered, public - info_only ^ covered
    names = " ".join(TARGETS)
    assert all(n in names for n in covered - {"lz_lambda_sums", "real_entropy", "n_distinct", "PackedItems"})
