#ifndef KOSMOS_KV_CODECS_H
#define KOSMOS_KV_CODECS_H
// C side of KosmosVision's decoders. libjpeg and libpng report fatal errors by calling an error
// handler that must not return; the only way back is longjmp, which must not cross Swift frames.
// So every libjpeg/libpng call that can fail runs inside these functions, which setjmp first and
// turn the failure into a status code plus message for Swift.
#include <stddef.h>

enum {
    KV_OK = 0,
    KV_NOT_THIS_FORMAT = 1,   // signature does not match
    KV_CORRUPT = 2,           // the codec rejected the data; message says why
    KV_TRUNCATED = 3,         // the data ended before the image did
    KV_BUFFER_TOO_SMALL = 4,  // caller's buffer smaller than width*height*channels*bytes
    KV_OUT_OF_MEMORY = 5,
    KV_UNAVAILABLE = 6,       // built without the codec's library (its headers were missing)
};

enum {
    KV_JPEG_GRAY = 1,
    KV_JPEG_RGB = 3,
    KV_JPEG_CMYK = 4,         // samples as stored (Adobe files store them inverted)
};

typedef struct {
    int width;
    int height;
    int channels;            // samples per pixel in the decoded buffer
    int bytesPerSample;      // 1, or 2 (big-endian) for 16-bit grayscale PNG
    int sawAdobeMarker;      // JPEG only
    int exifLength;          // JPEG only: bytes of the APP1 Exif payload copied into exif (0 if none)
    int lastIsAlpha;         // TIFF only: the 2nd (grey) or 4th (RGB) channel is alpha, not an unspecified extra sample
    char message[200];
} kv_image_info;

// Reads only the header. exif (capacity exifCapacity) receives the APP1 "Exif\0\0" payload if present.
int kv_jpeg_read_header(const unsigned char *data, size_t size, kv_image_info *info,
                        unsigned char *exif, int exifCapacity);
// Decodes into out (row-major, info->channels bytes per pixel). Uses libjpeg's defaults for the
// DCT (JDCT_ISLOW) and fancy upsampling, which is what PIL uses.
int kv_jpeg_decode(const unsigned char *data, size_t size, kv_image_info *info,
                   unsigned char *out, size_t outSize);

// Encodes 8-bit RGB (or greyscale when channels == 1) as a baseline JPEG. On KV_OK *outData is a
// malloc'ed buffer of *outSize bytes that the caller frees with kv_free.
int kv_jpeg_encode(const unsigned char *pixels, int width, int height, int channels, int quality,
                   unsigned char **outData, unsigned long *outSize, kv_image_info *info);
void kv_free(void *pointer);

// Encodes 8-bit RGB (channels 3) or greyscale (channels 1) as a non-interlaced PNG with libpng's
// default compression. On KV_OK *outData is a malloc'ed buffer of *outSize bytes (free with kv_free).
int kv_png_encode(const unsigned char *pixels, int width, int height, int channels,
                  unsigned char **outData, size_t *outSize, kv_image_info *info);

int kv_png_read_header(const unsigned char *data, size_t size, kv_image_info *info);
int kv_png_decode(const unsigned char *data, size_t size, kv_image_info *info,
                  unsigned char *out, size_t outSize);

// WebP through libwebp (Debian: libwebp-dev): the header gives width, height and channels (4 when
// the file has alpha, else 3); decoding writes RGB or RGBA with libwebp's defaults (fancy
// upsampling), as Pillow decodes. KV_UNAVAILABLE when built without libwebp's headers.
int kv_webp_read_header(const unsigned char *data, size_t size, kv_image_info *info);
int kv_webp_decode(const unsigned char *data, size_t size, kv_image_info *info,
                   unsigned char *out, size_t outSize);

// TIFF through libtiff (Debian: libtiff-dev), the first page: 8-bit greyscale, RGB, palette (expanded
// to RGB with the colour map's high bytes, as Pillow does), bilevel (0/255), each with an extra
// sample; strips or tiles, contiguous or planar, any compression libtiff reads (JPEG-compressed
// YCbCr comes out as RGB). Samples as stored: alpha is not premultiplied (unlike libtiff's RGBA
// interface); MINISWHITE is inverted. Associated (premultiplied) alpha, 16-bit and CMYK files are
// refused with a message. KV_UNAVAILABLE when built without libtiff's headers.
int kv_tiff_read_header(const unsigned char *data, size_t size, kv_image_info *info);
int kv_tiff_decode(const unsigned char *data, size_t size, kv_image_info *info,
                   unsigned char *out, size_t outSize);

#endif
