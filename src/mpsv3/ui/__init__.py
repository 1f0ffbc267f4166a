"""``mpsv3 ui``: the operator's screen (a Textual app over the control socket).

Nothing is imported here, so that ``import mpsv3.ui.model`` (pure) does not load Textual;
the app itself is :mod:`mpsv3.ui.app`.
"""
