"""The saliency methods by key and by name, without importing torch or Captum.

Why its own module: the study's TOML check (``study.domain.config``), the reading page's overlay label and the
playground all need the list and the names, and must not load the model stack to get them;
``revision_core.saliency`` implements these methods and takes the list from here.
"""

METHODS = ("integrated_gradients", "smoothgrad", "gradcam", "occlusion")
METHOD_NAMES = {"integrated_gradients": "Integrated gradients", "smoothgrad": "SmoothGrad",
                "gradcam": "Grad-CAM", "occlusion": "Occlusion"}
NOTES = {"gradcam": "coarse: the last feature grid"}  # what a person choosing a method should know


def method_name(method: str) -> str:
    """The method's name for a person ("Grad-CAM"); an unknown key in words."""
    return METHOD_NAMES.get(method, str(method).replace("_", " ").capitalize())
