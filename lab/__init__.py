"""Helpers for the Streamlit pages: chart builders, cached calls and widgets."""
