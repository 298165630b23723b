"""Symbols between the Trading API and Alpaca.

The platform names a US share class with a dot ("BRK.B", as Alpaca's orders and data do); a
strategy may write it "BRK-B" or "BRK/B" (other data vendors' spellings), and those become the
dot form. Crypto pairs go to Alpaca as "BTC/USD"; positions and activities may report them as
"BTCUSD", which `from_alpaca` turns back into the pair.
"""

from __future__ import annotations

from typing import Final

CRYPTO_QUOTES: Final = ("USD", "USDT", "USDC", "BTC")  # quote currencies of Alpaca's pairs
_CRYPTO_BASES: Final = frozenset({
    "AAVE", "AVAX", "BAT", "BCH", "BTC", "CRV", "DOGE", "DOT", "ETH", "GRT", "LINK", "LTC",
    "MKR", "PEPE", "SHIB", "SOL", "SUSHI", "TRUMP", "UNI", "USDC", "USDT", "XRP", "XTZ", "YFI",
})


def normalise(symbol: str) -> str:
    """The platform's spelling of `symbol`: upper case; a share class with a dot; a crypto pair
    with a slash ("btcusd" -> "BTC/USD")."""
    text = symbol.strip().upper()
    pair = _crypto_pair(text)
    if pair is not None:
        return pair
    return text.replace("-", ".").replace("/", ".")


def is_crypto(symbol: str) -> bool:
    """Whether `symbol` (in any spelling) is one of Alpaca's crypto pairs."""
    return _crypto_pair(symbol.strip().upper()) is not None


def to_alpaca(symbol: str) -> str:
    """The symbol as Alpaca's trading API takes it (orders, positions' paths)."""
    return normalise(symbol)


def path_symbol(symbol: str) -> str:
    """The symbol inside a URL path (/v2/positions/{symbol}): crypto without its slash."""
    return normalise(symbol).replace("/", "")


def from_alpaca(symbol: str) -> str:
    """The platform's spelling of a symbol Alpaca reported."""
    return normalise(symbol)


def _crypto_pair(text: str) -> str | None:
    if "/" in text:
        base, _, quote = text.partition("/")
        return f"{base}/{quote}" if base in _CRYPTO_BASES and quote in CRYPTO_QUOTES else None
    for quote in CRYPTO_QUOTES:
        base = text[: -len(quote)]
        if text.endswith(quote) and base in _CRYPTO_BASES:
            return f"{base}/{quote}"
    return None
