"""Free-text fundus reports in the style of clinic letters, with synonyms and explicit negations.

Why so much variation: the CLIP text tower must learn findings (and their negations) rather than
memorise a handful of template strings, so every sentence has several phrasings, abbreviations
(DR/NPDR, CDR, BRVO, AMD), both spellings (haemorrhage/hemorrhage), and a shuffled order.
Negations are written per absent finding, each in its own sentence/clause together with its cue
word ("no", "not", "without"), so a clause never mixes a present finding with a negation.
"""

from __future__ import annotations

import numpy as np

from .anatomy import Anatomy
from .lesions import Lesions


def _pick(rng: np.random.Generator, options):
    return options[int(rng.integers(len(options)))]


def _cap(s: str) -> str:
    return s[:1].upper() + s[1:] if s else s


def _eye_header(rng, eye: str) -> str:
    if eye == "OD":
        opts = ["Right eye:", "RE:", "OD:", "Right eye (OD):", "Fundus photograph, right eye.",
                "Colour fundus photo OD.", "R eye -", "OD fundus:"]
    else:
        opts = ["Left eye:", "LE:", "OS:", "Left eye (OS):", "Fundus photograph, left eye.",
                "Colour fundus photo OS.", "L eye -", "OS fundus:"]
    return _pick(rng, opts)


def _cdr_text(rng, cdr: float) -> str:
    c = f"{round(cdr, 1):.1f}"
    return _pick(rng, [f"CDR {c}", f"cup-to-disc ratio of {c}", f"C/D {c}", f"CDR {c}",
                       f"cup:disc {c}", f"vertical CDR {c}"])


def _haem(rng, plural=True) -> str:
    word = _pick(rng, ["haemorrhage", "hemorrhage", "haemorrhage", "hemorrhage", "bleed"])
    return word + ("s" if plural else "")


# ------------------------------------------------------------------------------------------ DR
def _dr_positive(rng, sev: str, info: dict) -> tuple[list[str], str]:
    name = _pick(rng, [f"{sev} non-proliferative diabetic retinopathy", f"{sev} NPDR", f"{sev} DR",
                       f"{sev} diabetic retinopathy", f"{sev} background diabetic retinopathy"])
    s: list[str] = []
    if sev == "mild":
        ma = _pick(rng, ["a few scattered microaneurysms", "isolated microaneurysms",
                         f"{info['n_ma']} microaneurysms at the posterior pole",
                         "occasional microaneurysms", "scattered dot microaneurysms"])
        if info["n_haem"]:
            ma += " and " + _pick(rng, ["an occasional dot " + _haem(rng, False), "a dot " + _haem(rng, False),
                                         f"{info['n_haem']} small intraretinal " + _haem(rng, info['n_haem'] > 1)])
        s.append(_cap(_pick(rng, [f"{ma}, consistent with {name}", f"{name}: {ma}", f"{ma} - {name}",
                                  f"{name} with {ma}"])) + ".")
    else:
        hx = _pick(rng, ["dot-blot " + _haem(rng), "intraretinal " + _haem(rng), "blot " + _haem(rng),
                         "dot and blot " + _haem(rng)])
        if sev == "severe":
            hx = _pick(rng, [f"extensive {hx} in all four quadrants", f"numerous {hx} in all 4 quadrants",
                             f"multiple {hx} throughout all quadrants"])
        else:
            hx = _pick(rng, [f"scattered {hx}", f"several {hx}", f"{hx} at the posterior pole"])
        ma = _pick(rng, ["microaneurysms", "multiple microaneurysms", "MAs"])
        s.append(_cap(_pick(rng, [f"{name} with {ma} and {hx}", f"{hx} and {ma} - {name}",
                                  f"{name}: {hx} and {ma}"])) + ".")
        for loc in info["exudates"][:2]:
            circ = "circinate " if info["circinate"] else ""
            s.append(_cap(_pick(rng, [f"{circ}hard exudates {loc}", f"a {circ}ring of hard exudates {loc}",
                                      f"cluster of waxy yellow exudates {loc}", f"{circ}exudates {loc}"])) + ".")
        if info["n_cws"]:
            cw = _pick(rng, ["cotton wool spots", "cotton-wool spots", "CWS", "soft exudates"])
            n = info["n_cws"]
            s.append(_cap(_pick(rng, [f"{n} {cw} along the arcades", f"{cw} present",
                                      f"{'a few' if n < 4 else 'several'} {cw} near the vascular arcades"])) + ".")
        if info["beading"]:
            s.append(_pick(rng, ["Venous beading noted.", "Venous beading in one arcade.",
                                 "Beaded veins."]))
    impression = name
    return s, impression


def _dr_negative(rng, present: dict) -> str:
    opts = ["No diabetic retinopathy.", "No DR.", "No signs of diabetic retinopathy.", "No microaneurysms.",
            "No evidence of diabetic retinopathy."]
    if "rvo" not in present and "glaucoma" not in present:
        opts += ["No haemorrhages or exudates.", "No hemorrhages or exudates.",
                 "No microaneurysms or haemorrhages.", "Nil haemorrhages, nil exudates."]
    return _pick(rng, opts)


# ----------------------------------------------------------------------------------------- AMD
def _amd_positive(rng, grade: str, info: dict) -> tuple[list[str], str]:
    amd = _pick(rng, ["AMD", "age-related macular degeneration", "ARMD", "macular degeneration"])
    s = []
    if grade == "early":
        s.append(_cap(_pick(rng, ["a few small drusen at the macula", "small hard drusen centrally",
                                  "scattered small macular drusen", f"{info['n_drusen']} small drusen at the macula"]))
                 + _pick(rng, [f", early {amd}.", f" - early {amd}.", "."]))
        imp = f"early {amd}"
    else:
        s.append(_cap(_pick(rng, ["multiple large soft drusen at the macula",
                                  "confluent soft drusen involving the macula",
                                  "numerous intermediate and large drusen centrally",
                                  "macular drusen, several large"])) + ".")
        if info["pigment"]:
            s.append(_cap(_pick(rng, ["pigmentary change at the macula", "RPE mottling with hyperpigmentation",
                                      "focal hyperpigmentation and hypopigmentation centrally",
                                      "macular pigment clumping"])) + ".")
        if info["ga"]:
            s.append(_cap(_pick(rng, ["geographic atrophy involving the fovea",
                                      "well-demarcated area of geographic atrophy at the fovea",
                                      "central atrophic patch (geographic atrophy)"])) + ".")
            imp = _pick(rng, [f"late (atrophic) {amd}", f"late dry {amd} with geographic atrophy"])
        else:
            imp = f"intermediate {amd}"
    if rng.random() < 0.75:
        s.append(_cap(_pick(rng, [f"features of {imp}", f"appearance consistent with {imp}"])) + ".")
    return s, imp


def _amd_negative(rng) -> str:
    return _pick(rng, ["Macula: no drusen.", "No drusen.", "No drusen or pigmentary change.",
                       "Macula clear with no signs of AMD.", "No macular drusen.",
                       "No evidence of macular degeneration.", "Macula healthy without drusen."])


# ------------------------------------------------------------------------------------ glaucoma
def _disc_sentence(rng, present: dict, an: Anatomy, info: dict | None) -> tuple[list[str], str | None]:
    cdr = _cdr_text(rng, an.cdr)
    if "glaucoma" in present:
        side = " and ".join(info["notch"]) if info else "inferior"
        adv = present["glaucoma"] == "advanced"
        cup = _pick(rng, ["glaucomatous cupping", "enlarged cup", "increased cupping",
                          "advanced cupping" if adv else "marked cupping"])
        s = [_cap(_pick(rng, [f"{cup}, {cdr}, with {side} rim thinning",
                              f"disc: {cdr}, thin {side} neuroretinal rim",
                              f"{cup} ({cdr}) with a focal {side} notch",
                              f"optic disc shows {cup}, {cdr}, {side} notching"])) + "."]
        if info and info["disc_haem"]:
            s.append(_cap(_pick(rng, ["splinter disc " + _haem(rng, False) + " at the rim",
                                      "disc margin " + _haem(rng, False)])) + ".")
        s.append(_pick(rng, ["Appearance suspicious for glaucomatous optic neuropathy.",
                             "Consistent with glaucoma.", "Glaucomatous optic neuropathy.",
                             "Likely glaucomatous disc."]))
        imp = _pick(rng, ["glaucomatous optic neuropathy", f"glaucoma ({cdr})", "glaucomatous cupping"])
        return s, imp
    neg_inline = rng.random() < 0.5
    if an.cdr >= 0.45:
        base = _pick(rng, [f"Disc healthy, {cdr}", f"Borderline {cdr} with a healthy rim",
                           f"Optic disc pink, {cdr}", f"Physiological cup, {cdr}"])
    else:
        base = _pick(rng, [f"Disc healthy, {cdr}", f"Optic disc pink and well defined, {cdr}",
                           f"Healthy disc, {cdr}", f"Disc margins sharp, {cdr}",
                           f"Optic nerve head normal, {cdr}"])
    s = [base + "."]
    if neg_inline or rng.random() < 0.7:
        s.append(_pick(rng, ["No glaucomatous cupping.", "No rim notching.", "Neuroretinal rim intact without notching.",
                             "No signs of glaucoma.", "Not glaucomatous."]))
    return s, None


# ----------------------------------------------------------------------------------------- RVO
def _rvo_positive(rng, info: dict) -> tuple[list[str], str]:
    t = info["territory"]
    short = "ST" if t.startswith("super") else "IT"
    brvo = _pick(rng, [f"{t} BRVO", f"{t} branch retinal vein occlusion", f"BRVO ({short})",
                       f"branch retinal vein occlusion, {t}", f"{t} branch vein occlusion"])
    fl = _pick(rng, ["flame " + _haem(rng), "flame-shaped " + _haem(rng), "splinter " + _haem(rng),
                     "superficial flame " + _haem(rng)])
    vein = _pick(rng, ["a dilated tortuous vein", "dilated and tortuous venous branch",
                       "venous dilatation and tortuosity"])
    s = [_cap(_pick(rng, [f"{fl} in the {t} quadrant with {vein} - {brvo}",
                          f"{brvo}: {fl} and {vein} in the {t} territory",
                          f"{fl} confined to the {t} sector with {vein}. Appearance of {brvo}",
                          f"sectoral {fl} ({t}) with {vein}, consistent with {brvo}"])) + "."]
    if info["n_cws"]:
        s.append(_pick(rng, ["Cotton wool spots in the affected territory.", "Some CWS in the same sector."]))
    return s, brvo


def _rvo_negative(rng) -> str:
    return _pick(rng, ["No vein occlusion.", "No signs of retinal vein occlusion.", "No BRVO.",
                       "Veins of normal calibre with no occlusion.", "No venous occlusion."])


# -------------------------------------------------------------------------------------- myopia
def _myopia_positive(rng, info: dict) -> tuple[list[str], str]:
    tess = _pick(rng, ["tessellated fundus", "tigroid (tessellated) fundus", "marked tessellation",
                       "prominent choroidal vessels (tessellation)"])
    ppa = _pick(rng, ["temporal peripapillary atrophy", "a peripapillary atrophy crescent",
                      "temporal PPA crescent", "myopic crescent temporal to the disc"])
    myo = _pick(rng, ["pathologic myopia", "high myopia", "myopic fundus changes", "pathological myopia"])
    s = [_cap(_pick(rng, [f"{tess} with {ppa}, in keeping with {myo}", f"{myo}: {tess} and {ppa}",
                          f"{ppa} and {tess} - {myo}", f"tilted disc with {ppa}. {_cap(tess)}"])) + "."]
    return s, myo


def _myopia_negative(rng) -> str:
    return _pick(rng, ["No myopic changes.", "No tessellation or peripapillary atrophy.",
                       "No peripapillary atrophy.", "No myopic degeneration."])


# ------------------------------------------------------------------------------------ assembly
def write_report(rng: np.random.Generator, present: dict[str, str], an: Anatomy, les: Lesions,
                 eye: str, quality: dict) -> str:
    """Compose the report; sentence order, wording and which negations appear depend on ``rng``."""
    body: list[list[str]] = []
    impressions: list[str] = []
    negs: list[str] = []
    p_neg = 0.85

    if "diabetic_retinopathy" in present:
        s, imp = _dr_positive(rng, present["diabetic_retinopathy"], les.info["diabetic_retinopathy"])
        body.append(s); impressions.append(imp)
    elif rng.random() < p_neg:
        negs.append(_dr_negative(rng, present))
    if "amd" in present:
        s, imp = _amd_positive(rng, present["amd"], les.info["amd"])
        body.append(s); impressions.append(imp)
    elif rng.random() < p_neg:
        negs.append(_amd_negative(rng))
    disc_s, disc_imp = _disc_sentence(rng, present, an, les.info.get("glaucoma"))
    body.append(disc_s)
    if disc_imp:
        impressions.append(disc_imp)
    if "rvo" in present:
        s, imp = _rvo_positive(rng, les.info["rvo"])
        body.append(s); impressions.append(imp)
    elif rng.random() < p_neg:
        negs.append(_rvo_negative(rng))
    if "pathologic_myopia" in present:
        s, imp = _myopia_positive(rng, les.info["pathologic_myopia"])
        body.append(s); impressions.append(imp)
    elif rng.random() < p_neg:
        negs.append(_myopia_negative(rng))
    if not present and rng.random() < 0.6:
        body.append([_pick(rng, ["Vessels: normal calibre and course.", "Normal vessels.",
                                 "Arteriovenous ratio normal.", "Macula flat with a good foveal reflex.",
                                 "Retina flat, periphery unremarkable."])])

    order = rng.permutation(len(body))
    sentences = [x for i in order for x in body[i]]
    for n in negs:                                   # negations interleaved or grouped at the end
        if rng.random() < 0.5:
            sentences.insert(int(rng.integers(len(sentences) + 1)), n)
        else:
            sentences.append(n)

    parts = [_eye_header(rng, eye)]
    if not present:
        parts.append(_pick(rng, ["Normal fundus.", "Normal study.", "No abnormality detected.",
                                 "Unremarkable fundus.", "Healthy fundus appearance."]))
    if quality.get("haze", 0) > 0.15 or quality.get("blur_sigma", 0) > 1.1:
        parts.append(_pick(rng, ["Image slightly hazy but gradable.", "Mildly blurred image, gradable.",
                                 "Suboptimal focus."]))
    elif rng.random() < 0.15:
        parts.append(_pick(rng, ["Good quality image.", "Image quality adequate."]))
    parts += sentences
    if rng.random() < 0.6:
        head = _pick(rng, ["Impression:", "Conclusion:", "Summary:", "Diagnosis:", "Assessment:"])
        if impressions:
            parts.append(f"{head} {'; '.join(impressions)}.")
        else:
            parts.append(f"{head} {_pick(rng, ['normal fundus', 'no retinal pathology', 'normal study'])}.")
    if rng.random() < 0.35:
        sev = present.get("diabetic_retinopathy")
        if sev == "severe" or "rvo" in present or present.get("amd") == "late":
            parts.append(_pick(rng, ["Refer to medical retina.", "Urgent retinal referral advised."]))
        elif "glaucoma" in present:
            parts.append(_pick(rng, ["Refer for visual fields and OCT RNFL.", "Glaucoma clinic referral."]))
        elif not present:
            parts.append(_pick(rng, ["Routine annual screening.", "Rescreen in 12 months."]))
        else:
            parts.append(_pick(rng, ["Review in 6 months.", "Follow-up recommended."]))
    return " ".join(parts)
