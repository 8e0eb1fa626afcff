"""Training engine of the optimisation and double-descent lab.

Nothing here imports Streamlit or prints: progress leaves through callbacks,
so the same code serves the app, the command line and the tests.
"""
