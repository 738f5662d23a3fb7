"""The lab: the inventory of physical boards, matching them to serial ports, locks so one
process drives a board, labgrid places on other hosts, the uploaders, and the strategy that
brings a board to a build."""
