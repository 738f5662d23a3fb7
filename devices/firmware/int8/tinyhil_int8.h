/* tinyhil int8 kernels: TensorFlow Lite's integer arithmetic in plain C99, for code that
 * harness/int8 generates from a .tflite model. No malloc, no runtime library; integer
 * kernels use no float. Results are meant to equal TFLite Micro's reference kernels
 * byte for byte (double-rounding MultiplyByQuantizedMultiplier, TFLM's default).
 *
 * Constant data (weights, biases, multipliers, layer parameters) lives in flash: on AVR in
 * program memory (PROGMEM, read with lpm), elsewhere as plain const. Parameter structs are
 * copied from flash to the stack when a layer starts. On AVR flash data must sit in the first
 * 64 KB (avr-gcc places .progmem there, ahead of code). */
#ifndef TINYHIL_INT8_H
#define TINYHIL_INT8_H

#include <stdint.h>
#include <string.h>

#if defined(__AVR__)
#include <avr/pgmspace.h>
#define TINYHIL_FLASH PROGMEM
#define TINYHIL_RD8(p) ((int8_t)pgm_read_byte(p))
#define TINYHIL_RD32(p) ((int32_t)pgm_read_dword(p))
#define TINYHIL_COPY_PARAMS(dst, src) memcpy_P((dst), (src), sizeof *(dst))
#else
#define TINYHIL_FLASH
#define TINYHIL_RD8(p) (*(const int8_t *)(p))
#define TINYHIL_RD32(p) (*(const int32_t *)(p))
#define TINYHIL_COPY_PARAMS(dst, src) memcpy((dst), (src), sizeof *(dst))
#endif

/* Per-layer timing hooks: generated code calls these around every layer. */
#ifndef TINYHIL_LAYER_BEGIN
#define TINYHIL_LAYER_BEGIN(i) ((void)0)
#endif
#ifndef TINYHIL_LAYER_END
#define TINYHIL_LAYER_END(i) ((void)0)
#endif

/* FULLY_CONNECTED. weights [out_features][in_features]; bias already holds
 * bias + input_offset * sum(weights of the row); multiplier/shift per output feature. */
typedef struct {
    const int8_t *weights;
    const int32_t *bias;
    const int32_t *multiplier;
    const int8_t *shift;
    uint16_t batches, in_features, out_features;
    int8_t output_zero_point, act_min, act_max;
} tinyhil_int8_fc_t;

/* CONV_2D (weights [out_c][k_h][k_w][in_c]) and DEPTHWISE_CONV_2D (weights [k_h][k_w][out_c],
 * out_c = in_c * depth_multiplier). Taps in the padding read pad_value (the input zero
 * point), which adds nothing once the input offset is folded into the bias. */
typedef struct {
    const int8_t *weights;
    const int32_t *bias;
    const int32_t *multiplier;
    const int8_t *shift;
    uint16_t in_h, in_w, in_c, out_h, out_w, out_c;
    uint8_t k_h, k_w, stride_h, stride_w, dil_h, dil_w, pad_h, pad_w, depth_multiplier;
    int8_t pad_value, output_zero_point, act_min, act_max;
} tinyhil_int8_conv_t;

typedef struct {
    uint16_t in_h, in_w, channels, out_h, out_w;
    uint8_t f_h, f_w, stride_h, stride_w, pad_h, pad_w;
    int8_t act_min, act_max;
} tinyhil_int8_pool_t;

typedef struct {
    uint16_t rows, depth;
    int32_t input_multiplier, diff_min;
    int8_t input_left_shift;
} tinyhil_int8_softmax_t;

typedef struct {
    uint16_t count;
    int32_t input_range_radius, input_multiplier;
    int8_t input_zero_point, input_left_shift;
} tinyhil_int8_logistic_t;

typedef struct {
    uint16_t count;
    int16_t input1_offset, input2_offset;
    int32_t input1_multiplier, input2_multiplier, output_multiplier;
    int8_t input1_shift, input2_shift, output_shift, left_shift;
    int8_t output_zero_point, act_min, act_max;
} tinyhil_int8_add_t;

/* MEAN over the axes set in reduce_mask (bit k: axis k of the shape padded to 4-D). */
typedef struct {
    uint16_t dims[4];
    uint16_t count;            /* elements averaged into each output */
    int32_t multiplier;        /* includes 1/count */
    int8_t shift, input_zero_point, output_zero_point;
    uint8_t reduce_mask;
} tinyhil_int8_mean_t;

typedef struct {
    uint16_t count;
    int32_t multiplier;
    int8_t shift, input_zero_point, output_zero_point;
} tinyhil_int8_requantize_t;

/* QUANTIZE float32 -> int8 and DEQUANTIZE int8 -> float32 (the model's float boundary). */
typedef struct {
    uint16_t count;
    float scale;
    int32_t zero_point;
} tinyhil_int8_affine_t;

/* TFLite's fixed-point helpers, exposed for tests and benchmarks. */
int32_t tinyhil_int8_srdhm(int32_t a, int32_t b);
int32_t tinyhil_int8_rounding_divide_by_pot(int32_t x, int8_t exponent);
int32_t tinyhil_int8_mbqm(int32_t x, int32_t multiplier, int8_t shift);

void tinyhil_int8_fully_connected(const int8_t *in, int8_t *out, const tinyhil_int8_fc_t *p);
void tinyhil_int8_conv_2d(const int8_t *in, int8_t *out, const tinyhil_int8_conv_t *p);
void tinyhil_int8_depthwise_conv_2d(const int8_t *in, int8_t *out, const tinyhil_int8_conv_t *p);
void tinyhil_int8_max_pool_2d(const int8_t *in, int8_t *out, const tinyhil_int8_pool_t *p);
void tinyhil_int8_average_pool_2d(const int8_t *in, int8_t *out, const tinyhil_int8_pool_t *p);
void tinyhil_int8_softmax(const int8_t *in, int8_t *out, const tinyhil_int8_softmax_t *p);
void tinyhil_int8_logistic(const int8_t *in, int8_t *out, const tinyhil_int8_logistic_t *p);
void tinyhil_int8_add(const int8_t *in1, const int8_t *in2, int8_t *out, const tinyhil_int8_add_t *p);
void tinyhil_int8_mean(const int8_t *in, int8_t *out, const tinyhil_int8_mean_t *p);
void tinyhil_int8_requantize(const int8_t *in, int8_t *out, const tinyhil_int8_requantize_t *p);
void tinyhil_int8_quantize(const float *in, int8_t *out, const tinyhil_int8_affine_t *p);
void tinyhil_int8_dequantize(const int8_t *in, float *out, const tinyhil_int8_affine_t *p);

#endif
