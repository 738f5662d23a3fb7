"""Cycles per MAC of the int8 FULLY_CONNECTED and CONV_2D kernels.

    python benchmarks/int8_kernels_bench.py

AVR (ATmega328P, avr-gcc -Os): a small program times each kernel with Timer1 at clk/1
(overflows counted in an interrupt) and prints the counts over the UART; simavr, which is
cycle-accurate, runs it. Each kernel is timed at two sizes that differ only in the length
of the inner loop, so the difference divided by the extra MACs is the cost of one MAC in
the inner loop; the total over all MACs (requantisation, loop set-up included) is shown too.

ESP32: no emulator here gives instruction counts (Espressif's QEMU is not installed), so
the inner loop is compiled with clang's Xtensa backend (ESP32 features) and its
instructions are counted statically, per MAC.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
KERNELS = ROOT / "devices" / "firmware" / "int8"

# (label, kernel, struct, fields, input bytes, output bytes, MACs); fields are C initialisers
FC = "tinyhil_int8_fully_connected"
CONV = "tinyhil_int8_conv_2d"


def fc_case(n_in, n_out):
    return (f"FC {n_in}->{n_out}", FC, "tinyhil_int8_fc_t",
            dict(batches=1, in_features=n_in, out_features=n_out, output_zero_point=0,
                 act_min=-128, act_max=127), n_in * n_out, n_out, n_in, n_in * n_out)


def conv_case(hw, ic, oc, k=3):
    fields = dict(in_h=hw, in_w=hw, in_c=ic, out_h=hw, out_w=hw, out_c=oc, k_h=k, k_w=k,
                  stride_h=1, stride_w=1, dil_h=1, dil_w=1, pad_h=k // 2, pad_w=k // 2,
                  depth_multiplier=1, pad_value=-3, output_zero_point=0, act_min=-128, act_max=127)
    return (f"CONV {hw}x{hw}x{ic}->{oc} k{k}", CONV, "tinyhil_int8_conv_t", fields,
            oc * k * k * ic, oc, hw * hw * ic, hw * hw * oc * k * k * ic)


def avr_program(cases) -> str:
    rng = np.random.default_rng(0)
    parts = ['#include <avr/io.h>', '#include <avr/interrupt.h>', '#include <stdio.h>',
             '#include "tinyhil_int8.h"',
             "static volatile uint16_t overflows;", "ISR(TIMER1_OVF_vect) { overflows++; }",
             "static int uart_put(char c, FILE *f) { (void)f; while (!(UCSR0A & _BV(UDRE0))); UDR0 = c; return 0; }",
             "static FILE uart = FDEV_SETUP_STREAM(uart_put, NULL, _FDEV_SETUP_WRITE);",
             "static int8_t in_buf[600], out_buf[300];"]
    calls = []
    for i, (label, kernel, struct, fields, n_w, n_out, n_in, macs) in enumerate(cases):
        w = ", ".join(str(v) for v in rng.integers(-127, 128, n_w))
        parts.append(f"static const int8_t w{i}[{n_w}] TINYHIL_FLASH = {{{w}}};")
        parts.append(f"static const int32_t b{i}[{n_out}] TINYHIL_FLASH = {{{', '.join(['1234L'] * n_out)}}};")
        parts.append(f"static const int32_t m{i}[{n_out}] TINYHIL_FLASH = {{{', '.join(['1518500250L'] * n_out)}}};")
        parts.append(f"static const int8_t s{i}[{n_out}] TINYHIL_FLASH = {{{', '.join(['-9'] * n_out)}}};")
        init = ", ".join(f".{k} = {v}" for k, v in fields.items())
        parts.append(f"static const {struct} p{i} TINYHIL_FLASH = {{.weights = w{i}, .bias = b{i}, "
                     f".multiplier = m{i}, .shift = s{i}, {init}}};")
        calls.append(f"""    overflows = 0; TCNT1 = 0;
    {kernel}(in_buf, out_buf, &p{i});
    {{ uint16_t t = TCNT1; cli(); if ((TIFR1 & _BV(TOV1)) && t < 32768) overflows++; sei();
      printf("case {i} %lu\\n", ((uint32_t)overflows << 16) + t); }}""")
    parts.append(f"""int main(void)
{{
    UCSR0A = _BV(U2X0); UBRR0 = 16; UCSR0B = _BV(TXEN0); UCSR0C = _BV(UCSZ01) | _BV(UCSZ00);
    stdout = &uart;
    for (uint16_t i = 0; i < sizeof in_buf; i++) in_buf[i] = (int8_t)(i * 37 + 11);
    TCCR1A = 0; TIMSK1 = _BV(TOIE1); TCCR1B = _BV(CS10); sei();
    overflows = 0; TCNT1 = 0;
    {{ uint16_t t = TCNT1; printf("case -1 %lu\\n", ((uint32_t)overflows << 16) + t); }}
{chr(10).join(calls)}
    printf("done\\n");
    for (;;) {{}}
}}""")
    return "\n".join(parts) + "\n"


def run_avr(cases, work: Path) -> list[int] | None:
    if not (shutil.which("avr-gcc") and shutil.which("simavr")):
        print("AVR: skipped (needs avr-gcc and simavr: scripts/setup.sh installs them)")
        return None
    src = work / "bench.c"
    src.write_text(avr_program(cases))
    elf = work / "bench.elf"
    subprocess.run(["avr-gcc", "-Os", "-mmcu=atmega328p", "-DF_CPU=16000000UL", "-std=gnu99",
                    f"-I{KERNELS}", str(src), str(KERNELS / "tinyhil_int8.c"), "-o", str(elf)],
                   check=True)
    proc = subprocess.Popen(["simavr", "-m", "atmega328p", "-f", "16000000", str(elf)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    counts = {}
    try:
        for line in proc.stdout:
            m = re.search(r"case (-?\d+) (\d+)", line)
            if m:
                counts[int(m.group(1))] = int(m.group(2))
            if "done" in line:
                break
    finally:
        proc.kill()
        proc.wait()
    overhead = counts.get(-1, 0)  # reading the timer and the ISR bookkeeping
    return [counts[i] - overhead for i in range(len(cases))]


def esp32_inner_loop() -> str:
    """Instructions per MAC in the FC inner loop, from clang's Xtensa assembly (ESP32)."""
    clang = shutil.which("clang-22")
    if not clang:
        return "ESP32: skipped (needs clang-22 with the Xtensa backend: apt-get install clang-22)"
    feats = [x for f in ("+windowed", "+mul32", "+mul32high", "+div32", "+density", "+loop",
                         "+sext", "+nsa", "+mac16", "+fp", "+bool", "+minmax", "+clamps")
             for x in ("-Xclang", "-target-feature", "-Xclang", f)]
    with tempfile.TemporaryDirectory(prefix="tinyhil-int8-xtensa-") as shim:
        # bare-metal: no libc headers for Xtensa here, so declare the two functions used
        (Path(shim) / "string.h").write_text("void *memcpy(void *, const void *, unsigned long);\n")
        (Path(shim) / "math.h").write_text("float roundf(float);\n")
        asm = subprocess.run([clang, "--target=xtensa", "-O2", "-S", "-o", "-", *feats,
                              "-nostdlibinc", f"-I{shim}", f"-I{KERNELS}", "-ffreestanding",
                              "-fno-unroll-loops", str(KERNELS / "tinyhil_int8.c")],
                             capture_output=True, text=True)
    if asm.returncode:
        return f"ESP32: clang-22 failed: {asm.stderr.strip().splitlines()[-1]}"
    body = asm.stdout.split("\ndot:", 1)[-1] if "\ndot:" in asm.stdout else \
        asm.stdout.split("tinyhil_int8_fully_connected:", 1)[1]
    # clang marks the innermost loop; its body runs from that label to the branch back to it
    m = re.search(r"\n(\.\w+):[^\n]*\n(?:\s*#[^\n]*\n)*\s*# =>\s+This Inner Loop Header[^\n]*\n(.*?\n\s+b\w+\s+[^\n]*\1)\n",
                  body, re.S)
    if not m:
        return "ESP32: could not find the FC inner loop in clang's assembly"
    insns = [l.strip().replace("\t", " ") for l in m.group(2).splitlines()
             if l.strip() and not l.strip().startswith(("#", ".")) and not l.strip().endswith(":")]
    return (f"ESP32 (clang-22 Xtensa, ESP32 features, static count, not run): FC/CONV inner loop "
            f"{len(insns)} instructions per MAC: {'; '.join(insns)}")

def main():
    cases = [fc_case(64, 16), fc_case(128, 16), conv_case(6, 8, 8), conv_case(6, 16, 8)]
    with tempfile.TemporaryDirectory(prefix="tinyhil-int8-bench-") as d:
        cycles = run_avr(cases, Path(d))
    if cycles:
        print("AVR ATmega328P (simavr, cycle-accurate, avr-gcc -Os):")
        for (label, *_, macs), c in zip(cases, cycles):
            print(f"  {label:24s} {macs:6d} MACs {c:8d} cycles  {c / macs:6.2f} cycles/MAC overall")
        for name, (a, b) in (("FULLY_CONNECTED", (0, 1)), ("CONV_2D", (2, 3))):
            extra = cases[b][-1] - cases[a][-1]
            print(f"  {name}: {(cycles[b] - cycles[a]) / extra:.2f} cycles per MAC in the inner loop")
    print(esp32_inner_loop())


if __name__ == "__main__":
    sys.exit(main())
