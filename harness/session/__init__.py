"""One benchmark run: which (board, backend, variant) cases, and the builds and running DUTs
behind the fixtures."""
