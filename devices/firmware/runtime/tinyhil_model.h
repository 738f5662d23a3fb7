/* The model ABI: what every model variant's glue code provides to the DUT runtime.
 * A variant is generated C (emlearn, m2cgen, ...) plus a small glue file that defines
 * `tinyhil_model_info` and `tinyhil_model_infer`. The same files are compiled for the board
 * and for the host (the host reference). */
#ifndef TINYHIL_MODEL_H
#define TINYHIL_MODEL_H

#include <stdint.h>

#include "tinyhil_wire.h"

typedef struct {
    const char *id;            /* "<model>/<variant>", e.g. "digits/rf_emlearn" */
    uint8_t hash[8];           /* first 8 bytes of the SHA-256 of the generated model source */
    uint16_t input_count;      /* elements per test vector */
    uint8_t input_dtype;       /* TINYHIL_DTYPE_* from tinyhil_wire.h */
    uint16_t output_count;     /* elements per output */
    uint8_t output_dtype;      /* TINYHIL_DTYPE_* */
} tinyhil_model_info_t;

extern const tinyhil_model_info_t tinyhil_model_info;

/* Bytes of one element of a TINYHIL_DTYPE_*, and of the model's input and output: what both
 * DUT runtimes (binary and EEMBC) buffer and send. */
static inline uint8_t tinyhil_dtype_size(uint8_t dtype)
{
    switch (dtype) {
    case TINYHIL_DTYPE_INT16: return 2;
    case TINYHIL_DTYPE_INT32:
    case TINYHIL_DTYPE_FLOAT32: return 4;
    default: return 1;
    }
}

static inline uint16_t tinyhil_input_bytes(void)
{
    return (uint16_t)(tinyhil_model_info.input_count * tinyhil_dtype_size(tinyhil_model_info.input_dtype));
}

static inline uint16_t tinyhil_output_bytes(void)
{
    return (uint16_t)(tinyhil_model_info.output_count * tinyhil_dtype_size(tinyhil_model_info.output_dtype));
}

/* Run one inference. `input` holds input_count elements of input_dtype (little endian,
 * suitably aligned); write output_count elements of output_dtype to `output`.
 * Return 0 on success, non-zero on failure. */
int tinyhil_model_infer(const void *input, void *output);

#endif
