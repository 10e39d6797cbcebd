"""One colour per sequence id, the same in every figure of every scenario.

A sequence's colour is a pure function of its id: sha256 of the id, modulo the
palette. Nothing else (its position in the scenario, the other sequences) moves
it, so "ATZ/BEV, then lenvatinib" is blue in the survival plot, the CE plane and
the CEAC, and in every scenario that has it. Two ids of one figure that share a
colour keep it; the later id (in sorted order) is told apart by its line style.
Imports only the standard library: the forked plot child uses it.
"""

import hashlib

# matplotlib's "tab10": ten colours that stay distinct on screen and in print; the
# shipped scenarios' ids hash to distinct ones within each scenario
PALETTE = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
)
LINE_STYLES = ("-", "--", ":", "-.")


def sequence_colour(sequence_id: str) -> str:
    """Hex colour of a sequence id (stable across figures, runs and scenarios)."""
    digest = hashlib.sha256(str(sequence_id).encode()).digest()
    return PALETTE[int.from_bytes(digest[:8], "big") % len(PALETTE)]


def sequence_styles(sequence_ids) -> dict[str, tuple[str, str]]:
    """{id: (colour, line style)} for the ids of one figure: each id's own colour; ids
    that share a colour get distinct line styles, in sorted id order."""
    seen: dict[str, int] = {}
    styles = {}
    for sid in sorted(sequence_ids):
        colour = sequence_colour(sid)
        k = seen.get(colour, 0)
        seen[colour] = k + 1
        styles[sid] = (colour, LINE_STYLES[k % len(LINE_STYLES)])
    return styles
