"""The built-in ray tracer (numpy + Pillow only), always available on every render server.

Kept import-free so ``python -m render_server.packages.builtin`` starts fast; the
adapter lives in :mod:`render_server.packages.builtin.adapter`.
"""

VERSION = "1.0.0"
