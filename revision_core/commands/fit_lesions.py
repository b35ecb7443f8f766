"""``fit-lesions``: measure expert-marked real lesions and write the synthetic renderer's lesion model."""
from __future__ import annotations

import json
import re
from pathlib import Path

DEFAULT_OUT = Path(__file__).resolve().parents[1] / "synthetic" / "lesion_model.json"
CREDIT = ("Fitted to the lesion-segmentation set of IDRiD (Porwal P. et al., 'Indian Diabetic Retinopathy Image "
          "Dataset (IDRiD): a database for diabetic retinopathy screening research', Data 2018, 3(3):25; "
          "CC BY 4.0): 69 photographs with expert masks of microaneurysms, haemorrhages, hard exudates and "
          "cotton-wool spots, measured at 1024 x 680 px. Only these statistics are kept; no image is.")


def configure(p) -> None:
    p.add_argument("--real", required=True, help="folder of IDRiD photographs with _MA/_HE/_EX/_SE/_OD masks")
    p.add_argument("--out", default=str(DEFAULT_OUT), help=f"JSON file to write (default {DEFAULT_OUT})")


def run(args) -> int:
    from ..lesion_stats import fit_idrid

    fitted = fit_idrid(args.real)
    doc = {"credit": CREDIT, "units": "lengths in disc diameters (DD, the set's median); contrast = ln(lesion / "
           "local background) per RGB channel; sectors of 45 degrees around the fovea, counter-clockwise from "
           "nasal (towards the disc) with inferior at 90 degrees, right-eye orientation",
           "command": "python -m revision_core fit-lesions --real ../shared/real/idrid-lesions", **fitted}
    text = json.dumps(doc, indent=1)
    # one line per list of numbers, so the file reads as a table
    text = re.sub(r"\[\s+([^\[\]{}]*?)\s+\]", lambda m: "[" + " ".join(m.group(1).split()) + "]", text)
    Path(args.out).write_text(text + "\n")
    print(f"wrote {args.out}: " + ", ".join(f"{k} ({v['n_lesions']} lesions)" for k, v in fitted.items() if k != "geometry"))
    return 0
