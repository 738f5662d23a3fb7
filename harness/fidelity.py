"""How much a number can be trusted. Every record carries one of these labels."""

HARDWARE = "hardware"                # measured on a real board
CYCLE_ACCURATE = "cycle-accurate"    # simavr: exact AVR cycles, deterministic
INSTRUCTION_COUNT = "instruction-count"  # QEMU with -icount: repeatable, not silicon cycles
FUNCTIONAL = "functional"            # emulator whose clock follows host time: outputs exact, timing is not the device's
WALL_CLOCK = "wall-clock"            # host time of a native process
MODELLED = "modelled"                # computed from a power model, never measured
STATIC = "static"                    # read from the ELF: the same on every backend
HOST_MODEL = "host-model"            # the Python model on the host (scikit-learn): exact, not a device figure
SIMULATED_INSTRUMENT = "simulated-instrument"  # a real instrument driver reading a simulated instrument

DESCRIPTIONS = {
    HARDWARE: "measured on a real board",
    CYCLE_ACCURATE: "exact cycle count from a cycle-accurate simulator (simavr)",
    INSTRUCTION_COUNT: "deterministic instruction count from QEMU -icount, not silicon cycles",
    FUNCTIONAL: "outputs exact; time follows the host's clock (qemu-system-avr): not a device figure, so its latency cells stay empty",
    WALL_CLOCK: "host wall-clock time of the firmware run as a local process",
    MODELLED: "computed from a power model, not measured",
    STATIC: "read from the firmware ELF; the same on every backend",
    HOST_MODEL: "the Python model (scikit-learn) run on the host on the same test data: exact, not a device figure",
    SIMULATED_INSTRUMENT: ("read through a real instrument driver from a simulated instrument (it says "
                           "so itself) fed by an emulator's exact timing and the power model: it "
                           "tests the instrument path, it is not a measurement"),
}

# Fidelities whose time is the device's own clock, so a latency column may show it. `functional`
# (an emulator's timer following the host clock) is not one; `wall-clock` is, on the native
# board only, whose device is the host itself.
DEVICE_TIME = frozenset({HARDWARE, CYCLE_ACCURATE, INSTRUCTION_COUNT, WALL_CLOCK})

# Short forms for the 100-column terminal table; the legend spells them out.
SHORT = {HARDWARE: "hw", CYCLE_ACCURATE: "cycle", INSTRUCTION_COUNT: "icount",
         FUNCTIONAL: "func", WALL_CLOCK: "wall", MODELLED: "model", STATIC: "static",
         SIMULATED_INSTRUMENT: "siminst", HOST_MODEL: "python"}
