// A tinyhil DUT: put your model's C files next to this sketch (they implement
// tinyhil_model_info and tinyhil_model_infer, see tinyhil_model.h), then run
//   pytest suites/ --board BOARD --variant VARIANT --firmware path/to/TinyHIL_DUT.ino.elf
#include <TinyHIL.h>

void setup()
{
    tinyhil_dut_main();   // never returns: serves the harness's requests
}

void loop() {}
