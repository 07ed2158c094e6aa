"""The look the demo's apps share: one style sheet, a page frame, the user's claims as a table.

Everything interpolated into a page is escaped here or by the caller with ``html.escape``.
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from typing import Any

#: One style sheet for the three apps (the SPA is served it as ``/style.css``).
STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;background:#f4f6fa;color:#1d2330;margin:0}
header{padding:1rem 2rem;color:#fff} header b{font-size:1.2rem} header small{opacity:.8;margin-left:.6rem}
.app1 header{background:#2454c5} .app2 header{background:#127a5b} .app3 header{background:#8a4b12}
main{max-width:44rem;margin:1.5rem auto;background:#fff;border-radius:10px;padding:1.2rem 2rem;
box-shadow:0 2px 12px rgba(0,0,0,.07)}
h2{margin:.3rem 0 .8rem}
a.button,button{display:inline-block;background:#1d2330;color:#fff;border:0;border-radius:6px;
padding:.5rem .9rem;text-decoration:none;font-size:.95rem;cursor:pointer;margin:.15rem .2rem .15rem 0}
button.secondary,a.secondary{background:#5a6478}
table{border-collapse:collapse} td{padding:.2rem 1rem .2rem 0;vertical-align:top} td:first-child{color:#667}
.note{color:#556;font-size:.92rem;background:#f0f3f8;border-radius:6px;padding:.55rem .8rem}
.seed{font-size:.92rem;border-left:4px solid #c5a100;background:#fffbe6;padding:.45rem .8rem;margin:0 0 1rem}
.ok{color:#127a5b;font-weight:600} .bad{color:#b3261e;font-weight:600}
pre{background:#1d2330;color:#e8ecf4;border-radius:6px;padding:.6rem .8rem;font-size:.8rem;overflow:auto;
max-height:14rem;white-space:pre-wrap;word-break:break-all}
"""


def page(app_class: str, title: str, subtitle: str, seed: str, body: str) -> str:
    """A styled page: a coloured header, the seed sentence this app shows, then ``body`` (HTML)."""
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{STYLE}</style></head>"
        f'<body class="{html.escape(app_class)}"><header><b>{html.escape(title)}</b>'
        f"<small>{html.escape(subtitle)}</small></header>"
        f'<main><p class="seed" id="seed">{seed}</p>{body}</main></body></html>'
    )


def user_table(user: Mapping[str, Any]) -> str:
    """Name, email and subject of a signed-in user (cells with ids ``user-name`` etc. for tests)."""
    rows = "".join(
        f"<tr><td>{html.escape(label)}</td><td id=\"user-{key}\">{html.escape(str(user.get(key, '')))}</td></tr>"
        for key, label in (("name", "Name"), ("email", "Email"), ("sub", "Subject (sub)"))
    )
    return f"<table>{rows}</table>"
