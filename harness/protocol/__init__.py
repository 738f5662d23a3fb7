"""The DUT's link protocols: tinyhil's binary protocol (client.py) and MLPerf Tiny's EEMBC
text protocol (eembc.py); a board's `protocol` picks one."""


def client_class(protocol: str):
    """The host client of a protocol named in harness.boards.PROTOCOLS."""
    if protocol == "eembc":
        from harness.protocol.eembc import EembcClient
        return EembcClient
    from harness.protocol.client import DutClient
    return DutClient
