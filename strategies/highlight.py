"""Server-side syntax highlighting of strategy code for the version page (pygments; the colours
are CSS classes under `.hl` in static/css/app.css, so pages need no script to show code)."""

from __future__ import annotations

from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import get_lexer_for_filename
from pygments.lexers.special import TextLexer
from pygments.util import ClassNotFound

MAX_HIGHLIGHTED_CHARS = 200_000  # beyond this a file is shown as plain text


def highlighted(path: str, text: str) -> str:
    """HTML of `text` with line numbers, coloured by the lexer of the file name's extension."""
    try:
        lexer = get_lexer_for_filename(path, stripnl=False)
    except ClassNotFound:
        lexer = TextLexer(stripnl=False)
    if len(text) > MAX_HIGHLIGHTED_CHARS:
        lexer = TextLexer(stripnl=False)
    formatter = HtmlFormatter(cssclass="hl", linenos="table", lineanchors=_anchor(path),
                              anchorlinenos=True, wrapcode=True)
    return highlight(text, lexer, formatter)


def _anchor(path: str) -> str:
    return "".join(ch if ch.isalnum() else "-" for ch in path)


def stylesheet() -> str:
    """The CSS app.css carries for `.hl` (regenerate with this function if the style changes)."""
    return HtmlFormatter(style="github-dark", cssclass="hl").get_style_defs(".hl")
