"""Tests for simseq.evidence: the packaged figures and the loader's validation."""

import re
from collections import Counter
from pathlib import Path
from typing import get_args

import pytest
import yaml
from pydantic import ValidationError

from simseq.evidence import (
    QUANTITY_RULES,
    EvidenceBase,
    Quantity,
    Record,
    UnknownEvidenceId,
    load_evidence,
)

SHARED_EVIDENCE = (
    Path(__file__).parents[2] / ".." / "shared" / "evidence" / "hcc_evidence.yaml"
).resolve()

# Ids that scenario files and other modules are known to cite.
CITED_IDS = [
    "second_line.lenvatinib.os.chon2024.unadjusted",
    "second_line.lenvatinib.pfs.cheon2025.ps_matched",
    "second_line.tki_ici.pfs.yin2025",
    "second_line.tki_mono_after_len.os.yin2025",
    "first_line.atz_bev.pfs.inoue2026",
    "first_line.atz_bev.pfs.imbrave150",
    "first_line.atz_bev.os_landmark_12.imbrave150",
    "first_line.atz_bev.discontinuation.chon2024",
    "first_line.atz_bev.after_progression.chon2024",
    "first_line.lenvatinib.pfs.inoue2026",
    "first_line.sorafenib.pfs.inoue2026",
    "best_supportive_care_after_1l.os.hepatolint2022",
    "hazard_ratios.os_2l.child_pugh_b.chon2024",
    "hazard_ratios.pfs_2l.sorafenib_vs_lenvatinib.chon2024",
    "hazard_ratios.os_2l.afp_gt_400.yin2025",
    "second_line.lenvatinib.response.chon2024",
    "second_line.lenvatinib.safety.chon2024",
    "second_line.lenvatinib.third_line_received.chon2024",
    "second_line_all_arms.events.chon2024.unadjusted",
    "population_at_2l.chon2024",
    "health_economics.utility.progression_free.su2021",
    "health_economics.ae_disutility.grade_3plus.su2021",
    "health_economics.price.atezolizumab_1200mg.su2021",
    "health_economics.cost.terminal_care_once.su2021",
    "quoted_in_chon2024.yoo.lenvatinib_2l_after_atz_bev",
]


@pytest.fixture(scope="module")
def evidence() -> EvidenceBase:
    return load_evidence()


def _record_numbers(rec: Record) -> list[float]:
    """Every number a record carries, in any field."""
    out = [x for x in (rec.value, rec.n, rec.events, rec.month) if x is not None]
    for bounds in (rec.ci95, rec.range):
        out += [x for x in bounds or () if x is not None]
    out += list((rec.counts or {}).values())
    out += [x for x in (rec.values or {}).values() if not isinstance(x, str)]
    return [float(x) for x in out]


def _numeric_leaves(node, path: str = "") -> list[tuple[str, float]]:
    if isinstance(node, dict):
        return [leaf for k, v in node.items() for leaf in _numeric_leaves(v, f"{path}.{k}")]
    if isinstance(node, list):
        return [leaf for i, v in enumerate(node) for leaf in _numeric_leaves(v, f"{path}[{i}]")]
    if isinstance(node, int | float) and not isinstance(node, bool):
        return [(path, float(node))]
    return []


def _key(x: float) -> float:
    return round(x, 9)


# ---------------------------------------------------------------- packaged file


def test_packaged_file_loads_once(evidence):
    assert len(evidence) == len(evidence.ids()) > 50
    assert load_evidence() is evidence  # cached
    assert "held_back" in evidence.notes


@pytest.mark.parametrize("record_id", CITED_IDS)
def test_cited_ids_resolve(evidence, record_id):
    assert record_id in evidence
    assert evidence.get(record_id).id == record_id


def test_lenvatinib_2l_os_chon2024(evidence):
    rec = evidence.get("second_line.lenvatinib.os.chon2024.unadjusted")
    assert rec.quantity == "median"
    assert rec.value == 10.3
    assert rec.ci95 == (6.8, None)
    assert rec.n == 40
    assert rec.unit == "months"
    assert rec.measured_from == "2l_start"
    assert rec.cohort == "unadjusted"
    assert not rec.transported


def test_first_line_flow_counts(evidence):
    disc = evidence.get("first_line.atz_bev.discontinuation.chon2024")
    assert disc.n == 194
    assert disc.counts == {"progression": 152, "died_on_treatment": 34,
                           "liver_or_clinical_deterioration": 8}  # fmt: skip
    after = evidence.get("first_line.atz_bev.after_progression.chon2024")
    assert (after.n, after.counts) == (152, {"received_2l": 136, "deteriorated_no_2l": 16})
    mix = evidence.get("first_line.atz_bev.second_line_mix.chon2024")
    assert mix.n == after.counts["received_2l"]
    assert mix.counts == {"sorafenib": 86, "lenvatinib": 40, "regorafenib": 8,
                          "fu5_chemotherapy": 2}  # fmt: skip


def test_other_lookups(evidence):
    landmark = evidence.get("first_line.atz_bev.os_landmark_12.imbrave150")
    assert (landmark.value, landmark.month, landmark.unit) == (0.672, 12, "probability")
    hr = evidence.get("hazard_ratios.pfs_2l.sorafenib_vs_lenvatinib.chon2024")
    assert (hr.value, hr.ci95) == (1.852, (1.142, 3.003))
    afp = evidence.get("hazard_ratios.os_2l.afp_gt_400.yin2025")
    assert afp.value is None and afp.ci95 is None and afp.note
    third = evidence.get("second_line.lenvatinib.third_line_received.chon2024")
    assert (third.n, third.counts, third.values) == (40, {"received_3l": 18}, {"received_3l": 0.4})
    utility = evidence.get("health_economics.utility.progression_free.su2021")
    assert (utility.value, utility.range) == (0.76, (0.61, 0.91))
    price = evidence.get("health_economics.price.atezolizumab_1200mg.su2021")
    assert (price.value, price.unit) == (9280, "usd_2019")
    bsc = evidence.get("best_supportive_care_after_1l.os.hepatolint2022")
    assert (bsc.value, bsc.n, bsc.measured_from) == (1.8, 11, "1l_failure")
    yoo = evidence.get("quoted_in_chon2024.yoo.lenvatinib_2l_after_atz_bev")
    assert yoo.values == {"pfs": 6.1, "os": 16.6}


def test_find_by_prefix(evidence):
    found = [r.id for r in evidence.find("second_line.lenvatinib.os.chon2024")]
    assert found == [
        "second_line.lenvatinib.os.chon2024.unadjusted",
        "second_line.lenvatinib.os.chon2024.ps_matched",
    ]
    assert evidence.find("no_such_section") == []
    assert [r.id for r in evidence] == evidence.ids()


def test_every_record_cites_its_source(evidence):
    for rec in evidence:
        assert rec.source in evidence.sources, rec.id
        assert rec.citation == evidence.sources[rec.source].cite, rec.id
        assert rec.citation.strip(), rec.id


def test_yin2025_second_line_is_transported(evidence):
    yin_2l = [r for r in evidence if r.source == "yin2025"]
    assert yin_2l and all(r.transported and r.prior_line == "lenvatinib" for r in yin_2l)
    after_atz_bev = evidence.find("second_line.lenvatinib") + evidence.find("second_line.sorafenib")
    assert after_atz_bev and not any(r.transported for r in after_atz_bev)


def test_records_and_base_are_immutable(evidence):
    rec = evidence.get("first_line.atz_bev.pfs.inoue2026")
    with pytest.raises(ValidationError):
        rec.value = 99.0
    with pytest.raises(TypeError):
        evidence.sources["x"] = evidence.sources["chon2024"]


def test_quantity_rules_cover_every_quantity():
    assert set(QUANTITY_RULES) == set(get_args(Quantity))


def test_unknown_id_lists_close_matches(evidence):
    with pytest.raises(UnknownEvidenceId) as info:
        evidence.get("second_line.lenvatinib.os.chon2024.unajusted")
    message = str(info.value)
    assert "'second_line.lenvatinib.os.chon2024.unajusted'" in message
    assert "second_line.lenvatinib.os.chon2024.unadjusted" in message
    assert isinstance(info.value, KeyError)
    assert 1 <= len(info.value.close_matches) <= 5


def test_unknown_id_missing_cohort_suggests_cohorts_first(evidence):
    with pytest.raises(KeyError) as info:
        evidence.get("second_line.lenvatinib.os.chon2024")
    assert info.value.close_matches[:2] == [
        "second_line.lenvatinib.os.chon2024.unadjusted",
        "second_line.lenvatinib.os.chon2024.ps_matched",
    ]


def test_unknown_id_without_close_match(evidence):
    with pytest.raises(UnknownEvidenceId, match="no close match"):
        evidence.get("zzz")


# ---------------------------------------- against the shared transcription source


@pytest.fixture(scope="module")
def shared_text() -> str:
    if not SHARED_EVIDENCE.is_file():
        pytest.skip(
            f"shared evidence file not found at {SHARED_EVIDENCE} (shared/ not beside repo)"
        )
    return SHARED_EVIDENCE.read_text(encoding="utf-8")


def test_every_shared_number_survives(evidence, shared_text):
    """Each numeric leaf of the shared file appears in the packaged records, with multiplicity."""
    leaves = _numeric_leaves(yaml.safe_load(shared_text))
    assert len(leaves) > 150
    available = Counter(_key(x) for rec in evidence for x in _record_numbers(rec))
    missing = []
    for path, x in leaves:
        if available[_key(x)] > 0:
            available[_key(x)] -= 1
        else:
            missing.append(f"{path} = {x}")
    assert not missing, "numbers from the shared file missing in the package:\n" + "\n".join(
        missing
    )


# Figures added to the packaged copy on purpose, each with a note on its record saying where
# it comes from: IMbrave150's 12-month OS CIs from Finn et al. 2020's abstract (issue 13).
ADDED_BEYOND_SHARED_FILE = {
    ("first_line.atz_bev.os_landmark_12.imbrave150", 0.613),
    ("first_line.atz_bev.os_landmark_12.imbrave150", 0.731),
    ("first_line.sorafenib.os_landmark_12.imbrave150", 0.452),
    ("first_line.sorafenib.os_landmark_12.imbrave150", 0.64),
}


def test_no_figure_added_beyond_shared_file(evidence, shared_text):
    """Held-back validation figures must not leak in: each packaged number is in the shared
    file, or added on purpose with its origin in the record's note."""
    written = {_key(float(m)) for m in re.findall(r"\d+(?:\.\d+)?", shared_text)}
    extra = sorted(
        f"{rec.id}: {x}"
        for rec in evidence
        for x in _record_numbers(rec)
        if _key(x) not in written and (rec.id, x) not in ADDED_BEYOND_SHARED_FILE
    )
    assert not extra, "numbers not in the shared file:\n" + "\n".join(extra)
    for rid, _ in ADDED_BEYOND_SHARED_FILE:
        assert "Finn et al. 2020's abstract" in " ".join(evidence.get(rid).note.split())


# ------------------------------------------------------------------ broken files


def _valid_file() -> dict:
    return {
        "notes": {"time_origin": "months from the start of the line"},
        "sources": {"chon2024": {"cite": "Chon YE, et al. 2024", "setting": "Korea"}},
        "records": [
            {
                "id": "second_line.lenvatinib.pfs.chon2024.unadjusted",
                "source": "chon2024",
                "quantity": "median",
                "value": 3.5,
                "unit": "months",
                "ci95": [3.0, 4.2],
                "n": 40,
                "measured_from": "2l_start",
            },
            {
                "id": "first_line.atz_bev.discontinuation.chon2024",
                "source": "chon2024",
                "quantity": "counts",
                "n": 194,
                "counts": {"progression": 152, "died_on_treatment": 34, "other": 8},
            },
        ],
    }


def _write(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / "evidence.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def test_minimal_custom_file_loads(tmp_path):
    path = _write(tmp_path, _valid_file())
    ev = load_evidence(path)
    assert ev.ids() == [
        "second_line.lenvatinib.pfs.chon2024.unadjusted",
        "first_line.atz_bev.discontinuation.chon2024",
    ]
    assert load_evidence(str(path)).get("first_line.atz_bev.discontinuation.chon2024").n == 194
    assert ev.get("second_line.lenvatinib.pfs.chon2024.unadjusted").citation == (
        "Chon YE, et al. 2024"
    )


def _set(index: int, **fields):
    def mutate(data: dict) -> None:
        data["records"][index].update(fields)

    return mutate


def _delete(index: int, key: str):
    def mutate(data: dict) -> None:
        del data["records"][index][key]

    return mutate


def _cite_other_source(data: dict) -> None:
    data["sources"]["other"] = {"cite": "Other A, 2020", "setting": "elsewhere"}
    data["records"][0]["source"] = "other"


PFS_ID = "'second_line.lenvatinib.pfs.chon2024.unadjusted'"
DISC_ID = "'first_line.atz_bev.discontinuation.chon2024'"

BROKEN = {
    "negative_median": (
        _set(0, value=-1.0, ci95=None),
        [PFS_ID, "value = -1.0", "a number > 0"],
    ),
    "ci_not_bracketing_value": (
        _set(0, ci95=[4.0, 5.0]),
        [PFS_ID, "ci95 = [4.0, 5.0]", "low <= value (3.5) <= high"],
    ),
    "ci_reversed": (_set(0, ci95=[4.2, 3.0]), [PFS_ID, "low must be <= high"]),
    "probability_above_one": (
        _set(0, quantity="landmark_survival", unit="probability", value=1.2, ci95=None, month=12),
        [PFS_ID, "value = 1.2", "[0, 1]"],
    ),
    "unknown_source": (
        _set(0, source="chon2042"),
        [PFS_ID, "unknown source 'chon2042'", "known: chon2024"],
    ),
    "source_not_in_id": (_cite_other_source, [PFS_ID, "does not appear in id"]),
    "malformed_id": (
        _set(0, id="Second_Line.Lenvatinib PFS"),
        ["'Second_Line.Lenvatinib PFS'", "not well formed", "dotted lowercase"],
    ),
    "duplicate_id": (
        lambda d: d["records"].append(dict(d["records"][0])),
        ["records[2]", PFS_ID, "duplicate id", "records[0]"],
    ),
    "negative_count": (
        _set(1, counts={"progression": -3}, n=None),
        [DISC_ID, ".counts.progression", "greater than or equal to 0", "-3"],
    ),
    "counts_not_summing_to_n": (
        _set(1, n=195),
        [DISC_ID, "sum to 194, not n = 195", "partition"],
    ),
    "misspelt_key": (
        lambda d: d["records"][0].update(medain=3.5),
        [PFS_ID, ".medain", "unknown key", "allowed keys", "measured_from"],
    ),
    "citation_written_in_yaml": (
        _set(0, citation="copied by hand"),
        [PFS_ID, "citation", "fills it from sources"],
    ),
    "bad_unit": (_set(0, unit="weeks"), [PFS_ID, ".unit", "'weeks'", "'months'"]),
    "bad_quantity": (_set(0, quantity="mean"), [PFS_ID, ".quantity", "'mean'", "'median'"]),
    "value_missing": (_delete(0, "value"), [PFS_ID, "value is missing"]),
    "measured_from_missing": (_delete(0, "measured_from"), [PFS_ID, "measured_from is missing"]),
    "hazard_ratio_null_without_note": (
        _set(0, quantity="hazard_ratio", unit="hazard_ratio", value=None, ci95=None),
        [PFS_ID, "needs a note"],
    ),
    "response_rate_above_one": (
        _set(
            0, quantity="response", unit="probability", value=None, ci95=None, values={"orr": 7.5}
        ),  # fmt: skip
        [PFS_ID, "values.orr = 7.5", "[0, 1]"],
    ),
    "source_without_cite": (
        lambda d: d["sources"]["chon2024"].pop("cite"),
        ["sources.chon2024.cite", "Field required"],
    ),
    "records_missing": (lambda d: d.pop("records"), ["records: must be a list"]),
    "unknown_top_level_key": (
        lambda d: d.update(record=[]),
        ["unknown top-level key(s) ['record']", "allowed: notes, sources, records"],
    ),
}


@pytest.mark.parametrize("case", list(BROKEN))
def test_broken_file_gives_clear_error(tmp_path, case):
    mutate, expected = BROKEN[case]
    data = _valid_file()
    mutate(data)
    path = _write(tmp_path, data)
    with pytest.raises(ValueError) as info:
        load_evidence(path)
    message = str(info.value)
    assert str(path) in message
    for fragment in expected:
        assert fragment in message, f"{fragment!r} not in:\n{message}"


def test_all_problems_reported_at_once(tmp_path):
    data = _valid_file()
    data["records"][0]["value"] = -1.0
    data["records"][1]["n"] = 195
    with pytest.raises(ValueError, match=r"2 problem\(s\)") as info:
        load_evidence(_write(tmp_path, data))
    assert PFS_ID in str(info.value) and DISC_ID in str(info.value)


def test_duplicate_yaml_key_is_an_error(tmp_path):
    path = tmp_path / "dup.yaml"
    text = yaml.safe_dump(_valid_file(), sort_keys=False)
    text = text.replace("  value: 3.5\n", "  value: 3.5\n  value: 35.0\n")
    path.write_text(text, encoding="utf-8")
    with pytest.raises(
        ValueError, match=r"duplicate key 'value' \(first given on line \d+\)"
    ) as info:
        load_evidence(path)
    assert str(path) in str(info.value)


def test_invalid_yaml_is_an_error(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("sources: {chon2024: [\nrecords: -", encoding="utf-8")
    with pytest.raises(ValueError, match="not valid YAML") as info:
        load_evidence(path)
    assert str(path) in str(info.value)
