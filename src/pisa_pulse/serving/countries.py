"""The dashboard's country names: the codebook's CNT value labels, as a static JSON file.

Written from the repository's data (`data/pisa2018/codebook_student_2018.json`, the CNT
variable's labels), never typed by hand: `python -m pisa_pulse.serving.countries` rewrites
`serving/static/countries.json`, and a test fails if the file and the codebook disagree.
"""

from __future__ import annotations

import json
from pathlib import Path

from pisa_pulse.core import codebook

OUT = Path(__file__).resolve().parent / "static" / "countries.json"


def names() -> dict[str, str]:
    """CNT code → the codebook's name (82 economies, e.g. QCI → "B-S-J-Z (China)")."""
    return dict(sorted(codebook.country_names().items()))


def render() -> str:
    return json.dumps(names(), indent=0, ensure_ascii=False) + "\n"


def main() -> None:
    OUT.write_text(render(), encoding="utf-8")
    print(f"wrote {len(names())} country names to {OUT}")


if __name__ == "__main__":
    main()
