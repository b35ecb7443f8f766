"""Streamlit custom components of the app's screens (each one widget, its JavaScript in this folder)."""
