"""Entry point of the lab: `streamlit run streamlit_app.py`.

st.navigation lists the four experiment pages explicitly, so the order and
the addresses (/optimizer-fit, /gradient-norms, ...) are fixed here.
NOTE: each page's file name matches its url_path. Streamlit still scans the
pages/ folder, and a visitor who opens /double-descent directly gets a
"Page not found" dialog when no file there carries that name.
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
    st.Page("pages/optimizer-fit.py", title="Optimizer fit", icon=":material/trending_down:", url_path="optimizer-fit"),
    st.Page("pages/gradient-norms.py", title="Gradient norms", icon=":material/bar_chart:", url_path="gradient-norms"),
    st.Page("pages/double-descent.py", title="Double descent", icon=":material/show_chart:", url_path="double-descent"),
    st.Page("pages/more-data.py", title="More data can hurt", icon=":material/dataset:", url_path="more-data"),
]

st.set_page_config(page_title="Optimisation lab", layout="wide")
st.navigation(PAGES).run()
