"""The engine's numbers, pinned bit for bit.

The digests below were captured on main at b472ac4, before simulate and simulate_draws
became one entry point, by this file as first committed (a34c431, in that commit's API):
``simulate`` with every tally kept at the default bin width, ``simulate`` of draw 3 with
``summary_tallies``, ``simulate_draws`` of a three-draw model at bin width 0.02 (global
draws 5-7, then with common streams), and a 300-patient event log of draw 2. The one
``simulate`` must give every one of them from the same seed, N and draw, for any threads
and chunks; a change of the numbers on purpose must say so and capture them anew. Each
model's own digest is pinned first, so that a change in the evidence or in ``resolve``
shows as that, not as an engine change. (The model digests were recaptured when
``state_econ`` gained its time-on-treatment columns, issue 13; every number digest
stayed as captured.)
"""

import dataclasses
import hashlib
import math
from pathlib import Path

import numpy as np
import pytest
from test_walks import slow_family_sequence, unmerged_sequence, weibull_chain

from simseq.engine.codes import (
    FAMILY_EXPONENTIAL,
    FAMILY_WEIBULL,
    N_TALLIES,
    TALLY_OS_GIVEN_ENTRY,
)
from simseq.evidence import load_evidence
from simseq.model import Covariate, compile_model
from simseq.outcomes import sequence_os_tallies, summary_tallies
from simseq.resolve import resolve
from simseq.scenario import load_scenario
from simseq.simulator import Tallies, simulate, simulate_trajectories

ROOT = Path(__file__).resolve().parents[2]
N, SEED = 3001, 11  # more than one block of 256 patients, not a multiple of it


def _scenario(path: Path, calibrated: dict, overrides=None, as_captured=False) -> tuple:
    scenario = load_scenario(str(path))
    if as_captured:
        scenario = _as_captured(scenario)
    res = resolve(scenario, load_evidence(), calibrated, str(path), overrides=overrides)
    return compile_model(res.sequences, res.covariates, res.economics), res.horizon


LEN_PFS = "second_line.lenvatinib.pfs.chon2024.unadjusted+second_line.lenvatinib.pfs.cheon2025"
SOR_PFS = "second_line.sorafenib.pfs.chon2024.unadjusted+second_line.sorafenib.pfs.cheon2025"
# The second-line PFS medians as pooled when these digests were captured (n-weighted
# geometric means; random effects since issue 12): pinned, so the engine stays pinned.
CAPTURED_POOLS = {
    f"pool:{LEN_PFS}.unadjusted": math.exp((40 * math.log(3.5) + 56 * math.log(4.9)) / 96),
    f"pool:{SOR_PFS}.unadjusted": math.exp((86 * math.log(1.8) + 67 * math.log(3.3)) / 153),
    # first-line ATZ/BEV's Weibull shape when they were captured (0.815 since issue 13)
    "value:regimens.atz_bev.time_on_line.shape": 1.0,
}


def _as_captured(scenario):
    """The scenario without what it gained after the capture (issue 13: the Child-Pugh
    population, time on treatment), so that the engine stays pinned to the same model."""
    regimens = {
        rid: reg.model_copy(update={"time_on_treatment": None, "cohort_population": None})
        for rid, reg in scenario.regimens.items()
    }
    return scenario.model_copy(update={"population": None, "regimens": regimens, "comparisons": {}})


MODELS = {
    "tiny": lambda: _scenario(
        ROOT / "tests" / "fixtures" / "tiny.yaml", {"lenvatinib.after_progression": 6.45}
    ),
    "cea": lambda: _scenario(
        ROOT / "scenarios" / "cea_base_case.yaml",
        {
            "lenvatinib.after_progression": 6.45,
            "sorafenib.after_progression": 4.75,
            "tki_ici.after_progression": 5.78,
        },
        CAPTURED_POOLS,
        as_captured=True,
    ),
    # competing clocks of different shapes: the general walk (``_walk_items``)
    "unmerged": lambda: (compile_model([unmerged_sequence()]), 60.0),
    "slow_cov": lambda: (
        compile_model(
            [slow_family_sequence(), weibull_chain()], covariates=(Covariate("frail", 0.4),)
        ),
        60.0,
    ),
}

# name: (model digest, run: hist, exit_counts, econ; draw 3 with summary_tallies: the same;
#        simulate_draws: os_hist, econ; with common streams: os_hist, econ; event log)
EXPECTED = {
    "tiny": (
        "c3b15b87602e64a9b04ee23de5ab23825178c704a5d9e77242b46db65c7b2e05",
        ("6456468eaf1d36d4ea2c9195695f698b", "2840265450d9d659fc7981635c5a4528", None),
        ("956b9889138bfa69f659e7adda131c45", "6340ad07072351e73efeaca78cc4ca46", None),
        ("c7a3a44a5e0c33edcda13f4dc06b622e", None),
        ("427995c0aee00553d9ea4471a95b4b59", None),
        "2ce1c47e35196435492b161e26e44c02",
    ),
    "cea": (
        "708d718f5f087ae72d2493df9c0f2a0bf8b547da93ed4c8da89cfd0f47d7ebcc",
        (
            "03f914d962cea6b1675af3d90c0c6754",
            "8acf875a70dbf9028cf35b9ddef2aba7",
            "608ef6909a388504ab68d8b098e3be8e",
        ),
        (
            "3d201191d9e1d31bb3faa5311ebcae42",
            "e58cdd35d9eb4e68ca90065522352f47",
            "a0a2b549f17715b2288a7290493426d1",
        ),
        ("d387cd7571dbad63cd83ca6a5976e38a", "c3e79a6ef6d5d9c2d7b8c3ca3db8b5e2"),
        ("76b922d6382e0ffb290a91be114553f7", "57d57af161f6923b265f39d49debda9e"),
        "af6fc1f98e066f52e016dc8a21fe6bb2",
    ),
    "unmerged": (
        "d01d955ae2a88e45fa2b6cf4d852625846deff3bfb04a351e10209bb1e9f3b13",
        ("13004be162752e08925de15cc7c81778", "fe05bc70a4424c278af6e74bc652bc04", None),
        ("6f35b310d9232ccd753b96d1c5f49b77", "11b4b642651bcee2f5bc3f0aa51090b5", None),
        ("9071f235ee322046394766b0e4b2f350", None),
        ("3a71335afc6e149e0efd9652d569a283", None),
        "07379aeef460763ba0476b9da313350f",
    ),
    "slow_cov": (
        "266f6dd0d967559470bd2480ef8413cdb0d88fc7194ef2d84c32d4db76f1303f",
        ("5cc413fc56618409a864dd6d124703f8", "27c8c91f4bff1bcfe1a756bfee0d32e2", None),
        ("26b184af4e9a29b1efbc7bbae84e2744", "babc9dd36d8dc7b66251a305badc1ace", None),
        ("a6de87ec901e6d43ebc0c5688f1bb0bb", None),
        ("c46a425b7dcb4c99895d0c52ade27bbe", None),
        "ef0da7711a1c4bfe311006dec563ee02",
    ),
}


def digest(a: np.ndarray | None) -> str | None:
    """First 32 hex digits of the sha256 of the array's C-order bytes (None for None)."""
    if a is None:
        return None
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()[:32]


def perturbed(model, n_draws: int):
    """``n_draws`` draws whose Weibull scales grow (exponential rates shrink) by 7 % a draw
    and whose monthly costs grow alike: draws with numbers of their own."""
    m = model.repeat_draws(n_draws)
    factor = 1.0 + 0.07 * np.arange(n_draws)
    params = m.clock_params.copy()
    for c, family in enumerate(m.clock_family):
        if family == FAMILY_WEIBULL:
            params[:, c, 1] *= factor
        elif family == FAMILY_EXPONENTIAL:
            params[:, c, 0] /= factor
    econ = m.state_econ.copy()
    econ[:, :, 0] *= factor[:, None]
    return dataclasses.replace(
        m, clock_params=np.ascontiguousarray(params), state_econ=np.ascontiguousarray(econ)
    )


def dense(t: Tallies, draw: int = 0) -> np.ndarray:
    """int64 (N_TALLIES, n_states, 2, n_bins): draw ``draw``'s histograms in the layout
    main's ``Tallies.hist`` had (zeros where one was not kept)."""
    out = np.zeros((N_TALLIES, t.exit_counts.shape[1], *t.hist.shape[2:]), np.int64)
    out[t.slots[:, 0], t.slots[:, 1]] = t.hist[draw]
    return out


def run_digests(model, horizon: float, **split) -> tuple[tuple, tuple]:
    """(hist, exit_counts, econ) digests of every tally, then of draw 3's summary tallies."""
    out = []
    for kwargs in ({}, {"draw_lo": 3, "tallies": summary_tallies(model)}):
        t = simulate(model, N, SEED, horizon=horizon, **kwargs, **split)
        econ = None if t.econ is None else t.econ[0]
        out.append((digest(dense(t)), digest(t.exit_counts[0]), digest(econ)))
    return tuple(out)


def draw_digests(model, horizon: float, **split) -> tuple[tuple, tuple]:
    """(OS histograms int64 (n_draws, n_seq, 2, n_bins), econ) digests of three perturbed
    draws from global draw 5, then with common streams: what main's simulate_draws gave."""
    out = []
    for common in (False, True):
        t = simulate(
            perturbed(model, 3),
            N,
            SEED,
            horizon=horizon,
            bin_width=0.02,
            tallies=sequence_os_tallies(model),
            exit_counts=False,  # as a PSA asks: OS binned from the death time alone
            draw_lo=5,
            common_streams=common,
            **split,
        )
        os_hist = np.stack(
            [
                [t.histogram(TALLY_OS_GIVEN_ENTRY, [start], d) for start in model.seq_start_state]
                for d in range(t.n_draws)
            ]
        )
        out.append((digest(os_hist), digest(t.econ)))
    return tuple(out)


def log_digest(model, horizon: float) -> str:
    log = simulate_trajectories(model, 300, SEED, horizon=horizon, draw_idx=2)
    text = log.to_csv(index=False, float_format="%.17g")
    return hashlib.sha256(text.encode()).hexdigest()[:32]


# the default split, then one thread and chunks of 700 patients (blocks and rows cut
# elsewhere)
SPLITS = {"default": {}, "one-thread-small-chunks": {"threads": 1, "chunk_size": 700}}


@pytest.mark.parametrize("split", sorted(SPLITS))
@pytest.mark.parametrize("name", sorted(MODELS))
def test_numbers_are_those_captured_on_main(name, split):
    model, horizon = MODELS[name]()
    model_digest, run, run_summary, draws, draws_common, log = EXPECTED[name]
    assert model.digest() == model_digest, "the model changed (evidence, resolve): recapture"
    assert run_digests(model, horizon, **SPLITS[split]) == (run, run_summary)
    assert draw_digests(model, horizon, **SPLITS[split]) == (draws, draws_common)
    assert log_digest(model, horizon) == log
