"""The paper exchange's tradable universe: real US tickers at plausible prices."""

from __future__ import annotations

import uuid
from decimal import Decimal

from tradedesk.broker.types import Asset

# symbol, name, exchange, reference price, shortable, fractionable
_LISTINGS = [
    ("AAPL", "Apple Inc.", "NASDAQ", "230.00", True, True),
    ("MSFT", "Microsoft Corporation", "NASDAQ", "430.00", True, True),
    ("NVDA", "NVIDIA Corporation", "NASDAQ", "135.00", True, True),
    ("AMZN", "Amazon.com, Inc.", "NASDAQ", "200.00", True, True),
    ("GOOGL", "Alphabet Inc. Class A", "NASDAQ", "170.00", True, True),
    ("META", "Meta Platforms, Inc.", "NASDAQ", "580.00", True, True),
    ("TSLA", "Tesla, Inc.", "NASDAQ", "250.00", True, True),
    ("SPY", "SPDR S&P 500 ETF Trust", "ARCA", "580.00", True, True),
    ("QQQ", "Invesco QQQ Trust", "NASDAQ", "500.00", True, True),
    ("IWM", "iShares Russell 2000 ETF", "ARCA", "225.00", True, True),
    ("DIA", "SPDR Dow Jones Industrial Average ETF", "ARCA", "430.00", True, True),
    ("BRK.B", "Berkshire Hathaway Inc. Class B", "NYSE", "460.00", True, True),
    ("JPM", "JPMorgan Chase & Co.", "NYSE", "220.00", True, True),
    ("V", "Visa Inc.", "NYSE", "280.00", True, True),
    ("MA", "Mastercard Incorporated", "NYSE", "500.00", True, True),
    ("UNH", "UnitedHealth Group Incorporated", "NYSE", "560.00", True, True),
    ("JNJ", "Johnson & Johnson", "NYSE", "160.00", True, True),
    ("PG", "The Procter & Gamble Company", "NYSE", "170.00", True, True),
    ("XOM", "Exxon Mobil Corporation", "NYSE", "115.00", True, True),
    ("CVX", "Chevron Corporation", "NYSE", "150.00", True, True),
    ("HD", "The Home Depot, Inc.", "NYSE", "400.00", True, True),
    ("KO", "The Coca-Cola Company", "NYSE", "68.00", True, True),
    ("PEP", "PepsiCo, Inc.", "NASDAQ", "165.00", True, True),
    ("COST", "Costco Wholesale Corporation", "NASDAQ", "900.00", True, True),
    ("WMT", "Walmart Inc.", "NYSE", "80.00", True, True),
    ("DIS", "The Walt Disney Company", "NYSE", "95.00", True, True),
    ("NFLX", "Netflix, Inc.", "NASDAQ", "700.00", True, True),
    ("ADBE", "Adobe Inc.", "NASDAQ", "500.00", True, True),
    ("CRM", "Salesforce, Inc.", "NYSE", "290.00", True, True),
    ("ORCL", "Oracle Corporation", "NYSE", "170.00", True, True),
    ("INTC", "Intel Corporation", "NASDAQ", "22.00", True, True),
    ("AMD", "Advanced Micro Devices, Inc.", "NASDAQ", "155.00", True, True),
    ("AVGO", "Broadcom Inc.", "NASDAQ", "170.00", True, True),
    ("QCOM", "QUALCOMM Incorporated", "NASDAQ", "165.00", True, True),
    ("CSCO", "Cisco Systems, Inc.", "NASDAQ", "55.00", True, True),
    ("IBM", "International Business Machines Corporation", "NYSE", "215.00", True, True),
    ("BAC", "Bank of America Corporation", "NYSE", "42.00", True, True),
    ("WFC", "Wells Fargo & Company", "NYSE", "65.00", True, True),
    ("GS", "The Goldman Sachs Group, Inc.", "NYSE", "520.00", True, True),
    ("MS", "Morgan Stanley", "NYSE", "115.00", True, True),
    ("PFE", "Pfizer Inc.", "NYSE", "28.00", True, True),
    ("MRK", "Merck & Co., Inc.", "NYSE", "105.00", True, True),
    ("ABBV", "AbbVie Inc.", "NYSE", "190.00", True, True),
    ("LLY", "Eli Lilly and Company", "NYSE", "850.00", True, True),
    ("T", "AT&T Inc.", "NYSE", "22.00", True, True),
    ("VZ", "Verizon Communications Inc.", "NYSE", "42.00", True, True),
    ("NKE", "NIKE, Inc.", "NYSE", "80.00", True, True),
    ("MCD", "McDonald's Corporation", "NYSE", "300.00", True, True),
    ("BA", "The Boeing Company", "NYSE", "155.00", True, True),
    ("UBER", "Uber Technologies, Inc.", "NYSE", "75.00", True, True),
    ("PLTR", "Palantir Technologies Inc.", "NASDAQ", "40.00", False, True),
    ("GME", "GameStop Corp.", "NYSE", "22.00", False, False),
    ("SIRI", "Sirius XM Holdings Inc.", "NASDAQ", "3.00", True, False),
    ("SNDL", "SNDL Inc.", "NASDAQ", "0.9500", False, False),
]
# Listed but not tradable (halted), so the desk's "not tradable" path has a real case.
_HALTED = {"SNDL"}

REFERENCE_PRICES: dict[str, Decimal] = {row[0]: Decimal(row[3]) for row in _LISTINGS}

ASSETS: dict[str, Asset] = {
    symbol: Asset(
        id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"tradedesk-sim/{symbol}")),
        symbol=symbol,
        name=name,
        exchange=exchange,
        tradable=symbol not in _HALTED,
        marginable=True,
        shortable=shortable,
        easy_to_borrow=shortable,
        fractionable=fractionable,
    )
    for symbol, name, exchange, _price, shortable, fractionable in _LISTINGS
}
