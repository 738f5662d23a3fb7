# Data, not code: board files and firmware sources. Packaged as harness.devices so that an
# installed (non-editable) tinyhil finds them; see harness/paths.py.
