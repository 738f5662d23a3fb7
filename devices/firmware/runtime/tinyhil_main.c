/* Reference firmware entry point: the DUT runtime is all this firmware does. */
#include "tinyhil_dut.h"

int main(void)
{
    tinyhil_dut_main();
    return 0;
}
