"""Entry point of the lab: `streamlit run streamlit_app.py`.

st.navigation lists the four experiment pages explicitly, so the order and
the addresses (/optimizer-fit, /gradient-norms, ...) are fixed here.
NOTE: Streamlit 1.67 serves the very first run after a server start as a
legacy pages/ app, until this script has called st.navigation once. The
file names (optimizer_fit.py) differ from the addresses (optimizer-fit) on
purpose: a legacy match would run that page alone, without this frame. The
price is a "Page not found" notice for the first visitor who opens a page
address directly on a freshly started server; the page still loads.
"""

import logging

import streamlit as st
import torch

# The engine's matrices are small. On a 2-core server that a whole class
# shares, one thread per computation is faster than threads that contend
# for the cores (measured 3 s against 50 s for one sweep on a busy machine).
torch.set_num_threads(1)

logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def overview():
    st.title("Optimisation and generalisation lab")
    st.markdown(
        "Train small neural networks in your browser and see how they are optimised and "
        "why they generalise. Every result is cached: the same settings give the same "
        "numbers, instantly, for everyone."
    )
    st.page_link(PAGES[1], label="**Optimizer fit**: loss curves of SGD, momentum, RMSprop, "
                 "Adam and AdamW on a regression task.")
    st.page_link(PAGES[2], label="**Gradient norms**: how much the gradient varies from one "
                 "minibatch to the next after training.")
    st.page_link(PAGES[3], label="**Double descent**: train and test error against network "
                 "width, with the interpolation threshold marked.")
    st.page_link(PAGES[4], label="**More data can hurt**: the same widths trained on more "
                 "points.")
    st.markdown(
        "Each page trains when you press **Run** in its sidebar. Moving a slider changes "
        "nothing until then, so a long run is never cut short by accident."
    )


PAGES = [
    st.Page(overview, title="Overview", icon=":material/home:", default=True),
    st.Page("pages/optimizer_fit.py", title="Optimizer fit", icon=":material/trending_down:", url_path="optimizer-fit"),
    st.Page("pages/gradient_norms.py", title="Gradient norms", icon=":material/bar_chart:", url_path="gradient-norms"),
    st.Page("pages/double_descent.py", title="Double descent", icon=":material/show_chart:", url_path="double-descent"),
    st.Page("pages/more_data.py", title="More data can hurt", icon=":material/dataset:", url_path="more-data"),
]

st.set_page_config(page_title="Optimisation lab", layout="wide")
st.navigation(PAGES).run()
