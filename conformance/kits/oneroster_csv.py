from ..kit import Kit
KIT = Kit("oneroster-csv-1.2", "x", "x")
