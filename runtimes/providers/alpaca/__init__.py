"""The Alpaca provider (alpaca-paper, alpaca-live). h-alpaca's package; connect.py checks keys."""
