"""The wire protocol: its one definition (wire) and the host-side client."""
