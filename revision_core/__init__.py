"""ReVision-style retinal vision-language model engine: load, zero-shot, saliency, evaluate, train.

Never imports Streamlit or the study package; the study and the pages call into it.
"""
