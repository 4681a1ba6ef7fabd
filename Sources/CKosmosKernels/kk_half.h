// Scalar float16 conversions shared by the kernel files (not part of the public header).
#ifndef KK_HALF_H
#define KK_HALF_H

#include <stdint.h>
#include <string.h>

/// IEEE float16 bits to float32 (exact).
static inline float f32_from_f16_scalar(uint16_t value) {
    _Float16 h;
    memcpy(&h, &value, 2);
    return (float)h;
}

/// float32 to IEEE float16 bits, rounded to nearest even.
static inline uint16_t f16_from_f32_scalar(float value) {
    _Float16 h = (_Float16)value;
    uint16_t bits;
    memcpy(&bits, &h, 2);
    return bits;
}

#endif
