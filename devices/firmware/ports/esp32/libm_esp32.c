/* expf and tanhf for freestanding ESP32 builds (no libm here: the ROM has none).
 * expf: x = k ln2 + r with |r| <= ln2/2, e^r by a degree-6 Taylor polynomial (error below
 * 2e-7 relative on that interval), scaled by 2^k through the exponent bits. Results may
 * differ from glibc's in the last bit, which is why float variants are not required to
 * agree 100 % with the host reference. */
#include <math.h>
#include <stdint.h>
#include <string.h>

float expf(float x)
{
    if (x != x)
        return x;
    if (x > 88.72283f)
        return INFINITY;
    if (x < -103.97208f)
        return 0.0f;
    const float ln2_hi = 0.693145751953125f, ln2_lo = 1.428606765330187e-06f;
    float t = x * 1.4426950408889634f;
    /* Round to nearest: add 0.5 with the sign of t (bitwise: clang 22's Xtensa backend
     * fails on a select between two float constants). */
    uint32_t tb, hb;
    float half;
    memcpy(&tb, &t, sizeof tb);
    hb = 0x3f000000u | (tb & 0x80000000u);
    memcpy(&half, &hb, sizeof half);
    int32_t k = (int32_t)(t + half);
    float kf = (float)k;
    float r = (x - kf * ln2_hi) - kf * ln2_lo;
    float p = 1.0f + r * (1.0f + r * (0.5f + r * (1.0f / 6 + r * (1.0f / 24 + r * (1.0f / 120 +
                                                                 r * (1.0f / 720))))));
    /* 2^k in two steps so that k down to -150 (subnormal results) stays representable. */
    int32_t k1 = k / 2, k2 = k - k1;
    uint32_t b1 = (uint32_t)(k1 + 127) << 23, b2 = (uint32_t)(k2 + 127) << 23;
    float s1, s2;
    memcpy(&s1, &b1, sizeof s1);
    memcpy(&s2, &b2, sizeof s2);
    return p * s1 * s2;
}

float tanhf(float x)
{
    if (x > 9.0f)
        return 1.0f;
    if (x < -9.0f)
        return -1.0f;
    if (__builtin_fabsf(x) < 0.0004f)
        return x;
    float e = expf(2.0f * x);
    return (e - 1.0f) / (e + 1.0f);
}
