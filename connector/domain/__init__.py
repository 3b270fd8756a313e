"""The pure core: the rules of the connector, with no I/O and no Azure, Graph or HTTP client imports."""
