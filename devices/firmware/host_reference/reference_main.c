/* Host reference driver: the same model C + glue as on the board, compiled for the host.
 *
 * stdin:  n test vectors, each input_count elements of input_dtype, raw little endian
 * stdout: n outputs, each output_count elements of output_dtype, raw little endian
 * `--info` instead prints tinyhil_model_info as one line of text (for checking the glue).
 *
 * Reads until end of input; a trailing partial vector is an error, so a short read by the
 * caller cannot pass silently. Exit status: 0 ok, 2 bad input, 3 the model failed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tinyhil_model.h"

/* Element sizes by TINYHIL_DTYPE_* code (harness/wire.py DTYPE_SIZE); 0 = unknown code. */
static size_t dtype_size(uint8_t code)
{
    switch (code) {
    case 1: return 1;  /* int8 */
    case 2: return 1;  /* uint8 */
    case 3: return 2;  /* int16 */
    case 4: return 4;  /* int32 */
    case 5: return 4;  /* float32 */
    default: return 0;
    }
}

int main(int argc, char **argv)
{
    const tinyhil_model_info_t *info = &tinyhil_model_info;

    if (argc > 1 && strcmp(argv[1], "--info") == 0) {
        printf("%s ", info->id);
        for (int i = 0; i < 8; i++)
            printf("%02x", info->hash[i]);
        printf(" %u %u %u %u\n", info->input_count, info->input_dtype,
               info->output_count, info->output_dtype);
        return 0;
    }

    size_t in_size = dtype_size(info->input_dtype) * info->input_count;
    size_t out_size = dtype_size(info->output_dtype) * info->output_count;
    if (in_size == 0 || out_size == 0) {
        fprintf(stderr, "reference: bad dtype or count in tinyhil_model_info\n");
        return 2;
    }
    /* malloc'd buffers are aligned for any element type, as the ABI promises the model */
    void *in = malloc(in_size), *out = malloc(out_size);
    if (!in || !out)
        return 2;

    for (unsigned long n = 0;; n++) {
        size_t got = fread(in, 1, in_size, stdin);
        if (got == 0 && feof(stdin))
            break;
        if (got != in_size) {
            fprintf(stderr, "reference: vector %lu is short (%zu of %zu bytes)\n", n, got, in_size);
            return 2;
        }
        memset(out, 0, out_size);
        int rc = tinyhil_model_infer(in, out);
        if (rc != 0) {
            fprintf(stderr, "reference: model failed on vector %lu (rc %d)\n", n, rc);
            return 3;
        }
        fwrite(out, 1, out_size, stdout);
    }
    free(in);
    free(out);
    return fflush(stdout) == 0 ? 0 : 2;
}
