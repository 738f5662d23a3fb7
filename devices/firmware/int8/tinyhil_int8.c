/* tinyhil int8 kernels; see tinyhil_int8.h. Written for tinyhil from the arithmetic TFLite's
 * reference kernels and gemmlowp's fixed-point library define (rounding, saturation,
 * multiplier formats); int is 16 bits on AVR, so every wide constant is spelled int32_t. */
#include "tinyhil_int8.h"

#include <math.h>

#define I32_MAX ((int32_t)0x7FFFFFFFL)
#define I32_MIN ((int32_t)(-I32_MAX - 1))

/* Flash byte read with pointer post-increment: one `lpm r, Z+` on AVR. */
#if defined(__AVR__)
#define RD8_INC(dst, p) __asm__("lpm %0, Z+" : "=r"(dst), "=z"(p) : "1"(p))
#else
#define RD8_INC(dst, p) ((dst) = *(p)++)
#endif

static int8_t clamp8(int32_t v, int8_t lo, int8_t hi)
{
    return (int8_t)(v < lo ? lo : v > hi ? hi : v);
}

/* gemmlowp SaturatingRoundingDoublingHighMul: (a * b * 2 + 2^31 rounding) >> 32, with the
 * one overflow case (INT32_MIN squared) saturated. The division by 2^31 truncates towards
 * zero, written as shifts of the magnitude so AVR needs no 64-bit division. */
#if defined(__AVR__) || defined(TINYHIL_INT8_SRDHM_PARTS)
/* AVR has no fast 64-bit multiply (libgcc's is ~500 cycles): multiply the magnitudes from
 * four 16x16->32 products and keep only bits 31..62, which is all the result needs. For
 * ab < 0, truncation towards zero is floor((|ab| + 2^30 - 1) / 2^31). The host tests
 * build this path with -DTINYHIL_INT8_SRDHM_PARTS. */
static uint32_t mul_u16(uint16_t a, uint16_t b)
{
#if defined(__AVR_HAVE_MUL__)   /* not the ATtiny cores: they have no MUL */
    uint32_t r;  /* avr-gcc -Os would call the 32x32 __mulsi3 */
    __asm__("mul %A1, %A2\n\tmovw %A0, r0\n\t"
            "mul %B1, %B2\n\tmovw %C0, r0\n\t"
            "mul %A1, %B2\n\tadd %B0, r0\n\tadc %C0, r1\n\tclr r1\n\tadc %D0, r1\n\t"
            "mul %B1, %A2\n\tadd %B0, r0\n\tadc %C0, r1\n\tclr r1\n\tadc %D0, r1"
            : "=&r"(r) : "r"(a), "r"(b) : "r0", "cc");
    return r;
#else
    return (uint32_t)a * b;
#endif
}

int32_t tinyhil_int8_srdhm(int32_t a, int32_t b)
{
    if (a == I32_MIN && b == I32_MIN)
        return I32_MAX;
    const uint8_t negative = (a < 0) != (b < 0);
    const uint32_t ua = a < 0 ? 0 - (uint32_t)a : (uint32_t)a;
    const uint32_t ub = b < 0 ? 0 - (uint32_t)b : (uint32_t)b;
    const uint16_t ah = ua >> 16, al = (uint16_t)ua, bh = ub >> 16, bl = (uint16_t)ub;
    const uint32_t m1 = mul_u16(ah, bl), m2 = mul_u16(al, bh);
    uint32_t high = mul_u16(ah, bh) + (m1 >> 16) + (m2 >> 16);
    uint32_t low = mul_u16(al, bl), t;
    t = low + (m1 << 16); high += t < low; low = t;
    t = low + (m2 << 16); high += t < low; low = t;
    t = low + (((uint32_t)1 << 30) - negative); high += t < low; low = t;
    const uint32_t r = (high << 1) | (low >> 31);
    return negative ? (int32_t)(0 - r) : (int32_t)r;
}
#else
int32_t tinyhil_int8_srdhm(int32_t a, int32_t b)
{
    if (a == I32_MIN && b == I32_MIN)
        return I32_MAX;
    int64_t ab = (int64_t)a * b;
    if (ab >= 0)
        return (int32_t)((ab + ((int64_t)1 << 30)) >> 31);
    return (int32_t)-((-(ab + 1 - ((int64_t)1 << 30))) >> 31);
}
#endif

/* u >> e moving whole bytes first: AVR shifts 32 bits one bit per loop turn. */
static uint32_t shr32(uint32_t u, uint8_t e)
{
    for (; e >= 8; e -= 8)
        u >>= 8;
    return u >> e;
}

/* gemmlowp RoundingDivideByPOT: x / 2^exponent rounded half away from zero. Computed on
 * the magnitude: (|x| + 2^(e-1)) >> e == ((|x| >> (e-1)) + 1) >> 1, no variable masks. */
int32_t tinyhil_int8_rounding_divide_by_pot(int32_t x, int8_t exponent)
{
    if (exponent == 0)
        return x;
    const uint32_t u = x < 0 ? 0 - (uint32_t)x : (uint32_t)x;
    const uint32_t r = (shr32(u, (uint8_t)(exponent - 1)) + 1) >> 1;
    return x < 0 ? (int32_t)(0 - r) : (int32_t)r;
}
#define RDPOT tinyhil_int8_rounding_divide_by_pot

/* TFLite MultiplyByQuantizedMultiplier (double rounding): x * multiplier * 2^(shift-31). */
int32_t tinyhil_int8_mbqm(int32_t x, int32_t multiplier, int8_t shift)
{
    if (shift > 0)
        return tinyhil_int8_srdhm((int32_t)((uint32_t)x << shift), multiplier);
    return RDPOT(tinyhil_int8_srdhm(x, multiplier), (int8_t)-shift);
}

static int8_t requantize(int32_t acc, const int32_t *mult, const int8_t *shift, uint16_t ch,
                         int8_t zp, int8_t lo, int8_t hi)
{
    acc = tinyhil_int8_mbqm(acc, TINYHIL_RD32(mult + ch), TINYHIL_RD8(shift + ch)) + zp;
    return clamp8(acc, lo, hi);
}

/* ------------------------------------------------------------------ MAC kernels */

/* acc + sum of x[i] * w[i] for i < n; x in RAM, w in flash, advanced past what was read.
 * This is the hot path of FULLY_CONNECTED and CONV_2D. */
#if defined(__AVR_HAVE_MUL__)
/* AVR: 11 cycles per MAC (ld 2, lpm 3, muls 2, sign 1, 24-bit add 3) plus loop control.
 * MULS leaves the product's sign in carry, `sbc t,t` turns it into the sign byte, so the
 * product is sign-extended for one cycle. Chunks of at most 252 MACs cannot overflow the
 * 24-bit partial sum (252 * 128 * 128 < 2^23). */
#define MAC1 "ld %[tx], X+\n\tlpm %[tw], Z+\n\tmuls %[tx], %[tw]\n\tsbc %[tw], %[tw]\n\t" \
             "add %A[s], r0\n\tadc %B[s], r1\n\tadc %C[s], %[tw]\n\t"
static int32_t dot(int32_t acc, const int8_t *x, const int8_t **wp, uint16_t n)
{
    const int8_t *w = *wp;
    while (n) {
        const uint8_t chunk = n > 252 ? 252 : (uint8_t)n;
        uint8_t quads = chunk >> 2, rest = chunk & 3, tx, tw;
        __int24 s = 0;
        n -= chunk;
        __asm__ volatile(
            "tst %[q]\n\tbreq 2f\n"
            "1:\n\t" MAC1 MAC1 MAC1 MAC1 "dec %[q]\n\tbrne 1b\n"
            "2:\n\ttst %[r]\n\tbreq 4f\n"
            "3:\n\t" MAC1 "dec %[r]\n\tbrne 3b\n"
            "4:\n\tclr r1\n"
            : [s] "+r"(s), [x] "+x"(x), [w] "+z"(w), [q] "+r"(quads), [r] "+r"(rest),
              [tx] "=&d"(tx), [tw] "=&d"(tw)
            :
            : "r0", "cc");
        acc += s;
    }
    *wp = w;
    return acc;
}
#elif defined(__AVR__)
/* An AVR without MUL (ATtiny): weights still read from flash, the product by libgcc. */
static int32_t dot(int32_t acc, const int8_t *x, const int8_t **wp, uint16_t n)
{
    const int8_t *w = *wp;
    for (int8_t tw; n; n--) {
        RD8_INC(tw, w);
        acc += (int16_t)(*x++ * tw);
    }
    *wp = w;
    return acc;
}
#else
static int32_t dot(int32_t acc, const int8_t *x, const int8_t **wp, uint16_t n)
{
    const int8_t *w = *wp;
    /* an end pointer, not a uint16_t count: 32-bit cores would mask the counter each turn */
    for (const int8_t *end = x + n; x != end;)
        acc += (int16_t)(*x++ * *w++);  /* int8 x int8 fits int16 */
    *wp = w;
    return acc;
}
#endif

void tinyhil_int8_fully_connected(const int8_t *in, int8_t *out, const tinyhil_int8_fc_t *pp)
{
    tinyhil_int8_fc_t p;
    TINYHIL_COPY_PARAMS(&p, pp);
    for (uint16_t b = 0; b < p.batches; b++, in += p.in_features) {
        const int8_t *w = p.weights;
        for (uint16_t o = 0; o < p.out_features; o++) {
            const int32_t acc = dot(TINYHIL_RD32(p.bias + o), in, &w, p.in_features);
            *out++ = requantize(acc, p.multiplier, p.shift, o, p.output_zero_point,
                                p.act_min, p.act_max);
        }
    }
}

void tinyhil_int8_conv_2d(const int8_t *in, int8_t *out, const tinyhil_int8_conv_t *pp)
{
    tinyhil_int8_conv_t p;
    TINYHIL_COPY_PARAMS(&p, pp);
    for (uint16_t oy = 0; oy < p.out_h; oy++) {
        for (uint16_t ox = 0; ox < p.out_w; ox++) {
            const int8_t *w = p.weights;
            for (uint16_t o = 0; o < p.out_c; o++) {
                int32_t acc = TINYHIL_RD32(p.bias + o);
                for (uint8_t ky = 0; ky < p.k_h; ky++) {
                    const int16_t iy = (int16_t)(oy * p.stride_h) - p.pad_h + ky * p.dil_h;
                    for (uint8_t kx = 0; kx < p.k_w; kx++) {
                        const int16_t ix = (int16_t)(ox * p.stride_w) - p.pad_w + kx * p.dil_w;
                        if (iy >= 0 && iy < (int16_t)p.in_h && ix >= 0 && ix < (int16_t)p.in_w) {
                            acc = dot(acc, in + ((uint16_t)iy * p.in_w + (uint16_t)ix) * p.in_c,
                                      &w, p.in_c);
                        } else {  /* padding reads the zero point: pad_value * sum(w) */
                            int32_t sum = 0;
                            for (uint16_t n = p.in_c; n; n--) {
                                int8_t wv;
                                RD8_INC(wv, w);
                                sum += wv;
                            }
                            acc += p.pad_value * sum;
                        }
                    }
                }
                *out++ = requantize(acc, p.multiplier, p.shift, o, p.output_zero_point,
                                    p.act_min, p.act_max);
            }
        }
    }
}

void tinyhil_int8_depthwise_conv_2d(const int8_t *in, int8_t *out, const tinyhil_int8_conv_t *pp)
{
    tinyhil_int8_conv_t p;
    TINYHIL_COPY_PARAMS(&p, pp);
    for (uint16_t oy = 0; oy < p.out_h; oy++) {
        for (uint16_t ox = 0; ox < p.out_w; ox++) {
            for (uint16_t o = 0; o < p.out_c; o++) {
                const uint16_t c = o / p.depth_multiplier;
                int32_t acc = TINYHIL_RD32(p.bias + o);
                for (uint8_t ky = 0; ky < p.k_h; ky++) {
                    const int16_t iy = (int16_t)(oy * p.stride_h) - p.pad_h + ky * p.dil_h;
                    for (uint8_t kx = 0; kx < p.k_w; kx++) {
                        const int16_t ix = (int16_t)(ox * p.stride_w) - p.pad_w + kx * p.dil_w;
                        const int8_t wv = TINYHIL_RD8(p.weights + ((uint16_t)ky * p.k_w + kx) * p.out_c + o);
                        int8_t xv = p.pad_value;
                        if (iy >= 0 && iy < (int16_t)p.in_h && ix >= 0 && ix < (int16_t)p.in_w)
                            xv = in[((uint16_t)iy * p.in_w + (uint16_t)ix) * p.in_c + c];
                        acc += (int16_t)(xv * wv);
                    }
                }
                *out++ = requantize(acc, p.multiplier, p.shift, o, p.output_zero_point,
                                    p.act_min, p.act_max);
            }
        }
    }
}

/* ------------------------------------------------------------------ pooling */

static void pool(const int8_t *in, int8_t *out, const tinyhil_int8_pool_t *pp, uint8_t average)
{
    tinyhil_int8_pool_t p;
    TINYHIL_COPY_PARAMS(&p, pp);
    for (uint16_t oy = 0; oy < p.out_h; oy++) {
        for (uint16_t ox = 0; ox < p.out_w; ox++) {
            /* the window clipped to the image, as TFLite does (padding is never counted) */
            const int16_t y0 = (int16_t)(oy * p.stride_h) - p.pad_h;
            const int16_t x0 = (int16_t)(ox * p.stride_w) - p.pad_w;
            const int16_t ys = y0 < 0 ? 0 : y0, xs = x0 < 0 ? 0 : x0;
            int16_t ye = y0 + p.f_h, xe = x0 + p.f_w;
            if (ye > (int16_t)p.in_h) ye = p.in_h;
            if (xe > (int16_t)p.in_w) xe = p.in_w;
            for (uint16_t c = 0; c < p.channels; c++) {
                int32_t acc = average ? 0 : -128;
                int16_t count = 0;
                for (int16_t y = ys; y < ye; y++) {
                    for (int16_t x = xs; x < xe; x++) {
                        const int8_t v = in[((uint16_t)y * p.in_w + (uint16_t)x) * p.channels + c];
                        if (average)
                            acc += v;
                        else if (v > acc)
                            acc = v;
                        count++;
                    }
                }
                if (average && count)  /* round half away from zero, in integers */
                    acc = acc > 0 ? (acc + count / 2) / count : (acc - count / 2) / count;
                *out++ = clamp8(acc, p.act_min, p.act_max);
            }
        }
    }
}

void tinyhil_int8_max_pool_2d(const int8_t *in, int8_t *out, const tinyhil_int8_pool_t *p)
{
    pool(in, out, p, 0);
}

void tinyhil_int8_average_pool_2d(const int8_t *in, int8_t *out, const tinyhil_int8_pool_t *p)
{
    pool(in, out, p, 1);
}

/* ------------------------------------------------------- gemmlowp fixed point */

/* Saturating x * 2^e for e > 0 (gemmlowp SaturatingRoundingMultiplyByPOT). */
static int32_t sat_shl(int32_t x, uint8_t e)
{
    const int32_t threshold = (int32_t)(((uint32_t)1 << (31 - e)) - 1);
    if (x > threshold)
        return I32_MAX;
    if (x < -threshold)
        return I32_MIN;
    return (int32_t)((uint32_t)x << e);
}

/* exp(a) for a in [-1/4, 0), Q0.31 in and out: Taylor series around -1/8. */
static int32_t exp_quarter(int32_t a)
{
    const int32_t exp_minus_eighth = 1895147668L, one_third = 715827883L;
    const int32_t x = a + ((int32_t)1 << 28);
    const int32_t x2 = tinyhil_int8_srdhm(x, x);
    const int32_t x3 = tinyhil_int8_srdhm(x2, x);
    const int32_t x4 = tinyhil_int8_srdhm(x2, x2);
    const int32_t x4_over_4 = RDPOT(x4, 2);
    const int32_t poly = RDPOT(tinyhil_int8_srdhm(x4_over_4 + x3, one_third) + x2, 1);
    return exp_minus_eighth + tinyhil_int8_srdhm(exp_minus_eighth, x + poly);
}

/* exp(a) for a <= 0 given with integer_bits (<= 5) integer bits; result Q0.31. */
static int32_t exp_negative(int32_t a, uint8_t integer_bits)
{
    static const int32_t factors[7] TINYHIL_FLASH = {  /* exp(-2^k), k = -2 .. 4, Q0.31 */
        1672461947L, 1302514674L, 790015084L, 290630308L, 39332535L, 720401L, 242L};
    const uint8_t frac = 31 - integer_bits;
    const int32_t quarter = (int32_t)1 << (frac - 2);
    const int32_t a_mod = (a & (quarter - 1)) - quarter;
    int32_t result = exp_quarter(sat_shl(a_mod, integer_bits));
    const int32_t remainder = a_mod - a;
    for (int8_t k = -2; k <= 4 && k < (int8_t)integer_bits; k++)
        if (remainder & ((int32_t)1 << (frac + k)))
            result = tinyhil_int8_srdhm(result, TINYHIL_RD32(factors + k + 2));
    return a == 0 ? I32_MAX : result;
}

/* 1 / (1 + a) for a in [0, 1), Q0.31 in and out: Newton-Raphson, 3 steps. */
static int32_t one_over_one_plus(int32_t a)
{
    const int64_t sum = (int64_t)a + I32_MAX;
    const int32_t half_den = (int32_t)((sum + (sum >= 0 ? 1 : -1)) / 2);
    int32_t x = 1515870810L + tinyhil_int8_srdhm(half_den, -1010580540L);  /* Q2.29 */
    for (uint8_t i = 0; i < 3; i++) {
        const int32_t err = ((int32_t)1 << 29) - tinyhil_int8_srdhm(half_den, x);
        x += sat_shl(tinyhil_int8_srdhm(x, err), 2);
    }
    return sat_shl(x, 1);
}

static uint8_t clz32(uint32_t x)
{
    uint8_t n = 0;
    if (!x)
        return 32;
    while (!(x & 0x80000000UL)) {
        x <<= 1;
        n++;
    }
    return n;
}

/* ------------------------------------------------------------------ activations */

void tinyhil_int8_softmax(const int8_t *in, int8_t *out, const tinyhil_int8_softmax_t *pp)
{
    tinyhil_int8_softmax_t p;
    TINYHIL_COPY_PARAMS(&p, pp);
    for (uint16_t r = 0; r < p.rows; r++, in += p.depth, out += p.depth) {
        int8_t max = -128;
        for (uint16_t c = 0; c < p.depth; c++)
            if (in[c] > max)
                max = in[c];
        int32_t sum = 0;  /* Q12.19 */
        for (uint16_t c = 0; c < p.depth; c++) {
            const int32_t diff = (int32_t)in[c] - max;
            if (diff >= p.diff_min) {
                const int32_t scaled = tinyhil_int8_mbqm(diff, p.input_multiplier, p.input_left_shift);
                sum += RDPOT(exp_negative(scaled, 5), 12);
            }
        }
        const uint8_t headroom = clz32((uint32_t)sum);
        const int8_t exponent = (int8_t)(12 - headroom + 31 - 8);
        const int32_t scale = one_over_one_plus(
            (int32_t)(((uint32_t)sum << headroom) - ((uint32_t)1 << 31)));
        for (uint16_t c = 0; c < p.depth; c++) {
            const int32_t diff = (int32_t)in[c] - max;
            int32_t v = -128;
            if (diff >= p.diff_min) {
                const int32_t scaled = tinyhil_int8_mbqm(diff, p.input_multiplier, p.input_left_shift);
                v = RDPOT(tinyhil_int8_srdhm(scale, exp_negative(scaled, 5)), exponent) - 128;
            }
            out[c] = clamp8(v, -128, 127);
        }
    }
}

void tinyhil_int8_logistic(const int8_t *in, int8_t *out, const tinyhil_int8_logistic_t *pp)
{
    tinyhil_int8_logistic_t p;
    TINYHIL_COPY_PARAMS(&p, pp);
    for (uint16_t i = 0; i < p.count; i++) {
        const int32_t x = (int32_t)in[i] - p.input_zero_point;
        if (x <= -p.input_range_radius) {
            out[i] = -128;
        } else if (x >= p.input_range_radius) {
            out[i] = 127;
        } else {
            const int32_t a = tinyhil_int8_mbqm(x, p.input_multiplier, p.input_left_shift); /* Q4.27 */
            int32_t y = (int32_t)1 << 30;  /* logistic(0) = 1/2 */
            if (a != 0) {
                const int32_t pos = one_over_one_plus(exp_negative(a > 0 ? -a : a, 4));
                y = a > 0 ? pos : I32_MAX - pos;
            }
            out[i] = clamp8(RDPOT(y, 23) - 128, -128, 127);
        }
    }
}

/* ------------------------------------------------------------------ elementwise */

void tinyhil_int8_add(const int8_t *in1, const int8_t *in2, int8_t *out, const tinyhil_int8_add_t *pp)
{
    tinyhil_int8_add_t p;
    TINYHIL_COPY_PARAMS(&p, pp);
    for (uint16_t i = 0; i < p.count; i++) {
        const int32_t a = (int32_t)((uint32_t)(int32_t)(in1[i] + p.input1_offset) << p.left_shift);
        const int32_t b = (int32_t)((uint32_t)(int32_t)(in2[i] + p.input2_offset) << p.left_shift);
        const int32_t sum = tinyhil_int8_mbqm(a, p.input1_multiplier, p.input1_shift) +
                            tinyhil_int8_mbqm(b, p.input2_multiplier, p.input2_shift);
        out[i] = clamp8(tinyhil_int8_mbqm(sum, p.output_multiplier, p.output_shift) +
                        p.output_zero_point, p.act_min, p.act_max);
    }
}

void tinyhil_int8_mean(const int8_t *in, int8_t *out, const tinyhil_int8_mean_t *pp)
{
    tinyhil_int8_mean_t p;
    TINYHIL_COPY_PARAMS(&p, pp);
    uint16_t keep[4], red[4], stride[4];
    stride[3] = 1;
    for (int8_t k = 2; k >= 0; k--)
        stride[k] = stride[k + 1] * p.dims[k + 1];
    for (uint8_t k = 0; k < 4; k++) {
        const uint8_t reduced = (p.reduce_mask >> k) & 1;
        keep[k] = reduced ? 1 : p.dims[k];
        red[k] = reduced ? p.dims[k] : 1;
    }
    for (uint16_t a = 0; a < keep[0]; a++)
    for (uint16_t b = 0; b < keep[1]; b++)
    for (uint16_t c = 0; c < keep[2]; c++)
    for (uint16_t d = 0; d < keep[3]; d++) {
        int32_t sum = 0;
        for (uint16_t i = 0; i < red[0]; i++)
        for (uint16_t j = 0; j < red[1]; j++)
        for (uint16_t k = 0; k < red[2]; k++)
        for (uint16_t l = 0; l < red[3]; l++)
            sum += in[(a + i) * stride[0] + (b + j) * stride[1] + (c + k) * stride[2] + (d + l)];
        sum -= (int32_t)p.input_zero_point * p.count;
        *out++ = clamp8(tinyhil_int8_mbqm(sum, p.multiplier, p.shift) + p.output_zero_point,
                        -128, 127);
    }
}

void tinyhil_int8_requantize(const int8_t *in, int8_t *out, const tinyhil_int8_requantize_t *pp)
{
    tinyhil_int8_requantize_t p;
    TINYHIL_COPY_PARAMS(&p, pp);
    for (uint16_t i = 0; i < p.count; i++)
        out[i] = clamp8(tinyhil_int8_mbqm((int32_t)in[i] - p.input_zero_point, p.multiplier,
                                          p.shift) + p.output_zero_point, -128, 127);
}

/* ------------------------------------------------------------------ float boundary */

void tinyhil_int8_quantize(const float *in, int8_t *out, const tinyhil_int8_affine_t *pp)
{
    tinyhil_int8_affine_t p;
    TINYHIL_COPY_PARAMS(&p, pp);
    for (uint16_t i = 0; i < p.count; i++) {
        const float q = roundf(in[i] / p.scale);  /* TFLite: round half away from zero */
        int32_t v = q > 1e9f ? I32_MAX : q < -1e9f ? I32_MIN : (int32_t)q + p.zero_point;
        out[i] = clamp8(v, -128, 127);
    }
}

void tinyhil_int8_dequantize(const int8_t *in, float *out, const tinyhil_int8_affine_t *pp)
{
    tinyhil_int8_affine_t p;
    TINYHIL_COPY_PARAMS(&p, pp);
    for (uint16_t i = 0; i < p.count; i++)  /* one rounding of an exact product, as TFLite */
        out[i] = (float)((double)p.scale * (double)((int32_t)in[i] - p.zero_point));
}
