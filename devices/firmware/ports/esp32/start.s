# ESP32 entry point. The ROM bootloader loads the image from flash offset 0x1000 and calls
# call_start_cpu0 on its own stack. We never return to the ROM: its call frames are dropped,
# the stack moves to our own (linker script: .dram0.stack), and tinyhil_esp32_start (C) runs.
    .section .entry.text,"ax",@progbits
    .literal_position
    .literal .Lstack_top, _stack_top
    .literal .Lc_start, tinyhil_esp32_start
    .global call_start_cpu0
    .type call_start_cpu0,@function
    .align 4
call_start_cpu0:
    # PS: window overflow exceptions on (WOE, bit 18), user vector mode (UM, bit 5), EXCM off,
    # interrupt level 5 (everything but NMI masked: the runtime polls). Overflows and
    # underflows are handled by the ROM's window vectors (VECBASE stays where the ROM put it).
    movi a2, 0x40025
    wsr a2, ps
    rsync
    # Only the current register window is live from here on: WINDOWSTART = 1 << WINDOWBASE.
    rsr a2, windowbase
    ssl a2
    movi a3, 1
    sll a3, a3
    wsr a3, windowstart
    rsync
    # Coprocessor 0 is the FPU: enable it before the first float instruction.
    movi a2, 1
    wsr a2, cpenable
    rsync
    l32r a1, .Lstack_top
    movi a0, 0
    l32r a4, .Lc_start
    callx4 a4
1:  j 1b
    .size call_start_cpu0, . - call_start_cpu0
    .section .note.GNU-stack,"",@progbits
