"""How much a number can be trusted. Every record carries one of these labels."""

HARDWARE = "hardware"                # measured on a real board
CYCLE_ACCURATE = "cycle-accurate"    # simavr: exact AVR cycles, deterministic
INSTRUCTION_COUNT = "instruction-count"  # QEMU with -icount: repeatable, not silicon cycles
FUNCTIONAL = "functional"            # emulator whose clock follows host time: outputs exact, timing is not the device's
WALL_CLOCK = "wall-clock"            # host time of a native process
MODELLED = "modelled"                # computed from a power model, never measured
STATIC = "static"                    # read from the ELF: the same on every backend
SIMULATED_INSTRUMENT = "simulated-instrument"  # a real instrument driver reading a simulated instrument

DESCRIPTIONS = {
    HARDWARE: "measured on a real board",
    CYCLE_ACCURATE: "exact cycle count from a cycle-accurate simulator (simavr)",
    INSTRUCTION_COUNT: "deterministic instruction count from QEMU -icount, not silicon cycles",
    FUNCTIONAL: "outputs exact; time follows the host's clock (QEMU without -icount): not a device figure",
    WALL_CLOCK: "host wall-clock time of the firmware run as a local process",
    MODELLED: "computed from a power model, not measured",
    STATIC: "read from the firmware ELF; the same on every backend",
    SIMULATED_INSTRUMENT: ("read through a real instrument driver from a simulated instrument (it says "
                           "so itself) fed by an emulator's exact timing and the power model: it "
                           "tests the instrument path, it is not a measurement"),
}
