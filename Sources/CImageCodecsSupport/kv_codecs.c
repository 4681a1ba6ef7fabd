// See kv_codecs.h for why this file exists: setjmp/longjmp error recovery for libjpeg and libpng.
#include "kv_codecs.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>
#include <jerror.h>
#include <png.h>

static void kv_set_message(kv_image_info *info, const char *text) {
    snprintf(info->message, sizeof(info->message), "%s", text);
}

// MARK: JPEG

typedef struct {
    struct jpeg_error_mgr pub;
    jmp_buf jump;
    int truncated;
    kv_image_info *info;
} kv_jpeg_error;

// libjpeg's default error_exit prints and calls exit(); ours records the message and jumps back.
static void kv_jpeg_error_exit(j_common_ptr cinfo) {
    kv_jpeg_error *err = (kv_jpeg_error *)cinfo->err;
    char buffer[JMSG_LENGTH_MAX];
    (*cinfo->err->format_message)(cinfo, buffer);
    kv_set_message(err->info, buffer);
    longjmp(err->jump, 1);
}

// Warnings (level -1) are tolerated like PIL tolerates them, except premature end of data: libjpeg
// would pad the image with grey, whereas PIL refuses truncated files, so we stop with an error.
static void kv_jpeg_emit_message(j_common_ptr cinfo, int msg_level) {
    kv_jpeg_error *err = (kv_jpeg_error *)cinfo->err;
    if (msg_level < 0) {
        err->pub.num_warnings++;
        if (err->pub.msg_code == JWRN_JPEG_EOF) {
            err->truncated = 1;
            kv_set_message(err->info, "JPEG data ends before the image does");
            longjmp(err->jump, 1);
        }
    }
}

static void kv_jpeg_silent_output(j_common_ptr cinfo) { (void)cinfo; }

static int kv_jpeg_run(const unsigned char *data, size_t size, kv_image_info *info,
                       unsigned char *exif, int exifCapacity, unsigned char *out, size_t outSize) {
    struct jpeg_decompress_struct cinfo;
    kv_jpeg_error err;
    memset(info, 0, sizeof(*info));
    if (size < 3 || data[0] != 0xFF || data[1] != 0xD8 || data[2] != 0xFF) {
        kv_set_message(info, "not a JPEG (no SOI marker)");
        return KV_NOT_THIS_FORMAT;
    }
    memset(&cinfo, 0, sizeof(cinfo));
    cinfo.err = jpeg_std_error(&err.pub);
    err.pub.error_exit = kv_jpeg_error_exit;
    err.pub.emit_message = kv_jpeg_emit_message;
    err.pub.output_message = kv_jpeg_silent_output;
    err.truncated = 0;
    err.info = info;
    if (setjmp(err.jump)) {
        jpeg_destroy_decompress(&cinfo);
        return err.truncated ? KV_TRUNCATED : KV_CORRUPT;
    }
    jpeg_create_decompress(&cinfo);
    jpeg_mem_src(&cinfo, data, (unsigned long)size);
    if (exif != NULL) {
        jpeg_save_markers(&cinfo, JPEG_APP0 + 1, 0xFFFF);
    }
    jpeg_read_header(&cinfo, TRUE);
    info->width = (int)cinfo.image_width;
    info->height = (int)cinfo.image_height;
    info->sawAdobeMarker = cinfo.saw_Adobe_marker ? 1 : 0;
    info->bytesPerSample = 1;
    switch (cinfo.jpeg_color_space) {
    case JCS_GRAYSCALE:
        cinfo.out_color_space = JCS_GRAYSCALE;
        info->channels = 1;
        break;
    case JCS_CMYK:
    case JCS_YCCK:
        cinfo.out_color_space = JCS_CMYK;
        info->channels = 4;
        break;
    default:
        cinfo.out_color_space = JCS_RGB;
        info->channels = 3;
        break;
    }
    if (exif != NULL) {
        for (jpeg_saved_marker_ptr m = cinfo.marker_list; m != NULL; m = m->next) {
            if (m->marker == JPEG_APP0 + 1 && m->data_length >= 6 && memcmp(m->data, "Exif\0\0", 6) == 0) {
                int n = (int)m->data_length - 6;
                if (n > exifCapacity) n = exifCapacity;
                memcpy(exif, m->data + 6, (size_t)n);
                info->exifLength = n;
                break;
            }
        }
    }
    if (out == NULL) {
        jpeg_destroy_decompress(&cinfo);
        return KV_OK;
    }
    // Stated explicitly so a libjpeg built with other defaults still matches PIL.
    cinfo.dct_method = JDCT_ISLOW;
    cinfo.do_fancy_upsampling = TRUE;
    jpeg_start_decompress(&cinfo);
    size_t rowBytes = (size_t)cinfo.output_width * (size_t)cinfo.output_components;
    if ((int)cinfo.output_components != info->channels
        || (size_t)cinfo.output_height * rowBytes > outSize) {
        kv_set_message(info, "output buffer too small for the decoded image");
        jpeg_destroy_decompress(&cinfo);
        return KV_BUFFER_TOO_SMALL;
    }
    while (cinfo.output_scanline < cinfo.output_height) {
        JSAMPROW row = out + (size_t)cinfo.output_scanline * rowBytes;
        jpeg_read_scanlines(&cinfo, &row, 1);
    }
    jpeg_finish_decompress(&cinfo);
    jpeg_destroy_decompress(&cinfo);
    return KV_OK;
}

int kv_jpeg_read_header(const unsigned char *data, size_t size, kv_image_info *info,
                        unsigned char *exif, int exifCapacity) {
    return kv_jpeg_run(data, size, info, exif, exifCapacity, NULL, 0);
}

int kv_jpeg_decode(const unsigned char *data, size_t size, kv_image_info *info,
                   unsigned char *out, size_t outSize) {
    if (out == NULL) {
        memset(info, 0, sizeof(*info));
        kv_set_message(info, "no output buffer");
        return KV_BUFFER_TOO_SMALL;
    }
    return kv_jpeg_run(data, size, info, NULL, 0, out, outSize);
}

int kv_jpeg_encode(const unsigned char *pixels, int width, int height, int channels, int quality,
                   unsigned char **outData, unsigned long *outSize, kv_image_info *info) {
    struct jpeg_compress_struct cinfo;
    kv_jpeg_error err;
    // jpeg_mem_dest may reallocate the buffer; volatile so the value after a longjmp is the latest.
    unsigned char *volatile buffer = NULL;
    unsigned long size = 0;
    memset(info, 0, sizeof(*info));
    *outData = NULL;
    *outSize = 0;
    if (width <= 0 || height <= 0 || (channels != 1 && channels != 3) || pixels == NULL) {
        kv_set_message(info, "invalid image to encode");
        return KV_CORRUPT;
    }
    memset(&cinfo, 0, sizeof(cinfo));
    cinfo.err = jpeg_std_error(&err.pub);
    err.pub.error_exit = kv_jpeg_error_exit;
    err.pub.output_message = kv_jpeg_silent_output;
    err.truncated = 0;
    err.info = info;
    if (setjmp(err.jump)) {
        jpeg_destroy_compress(&cinfo);
        free(buffer);
        return KV_CORRUPT;
    }
    jpeg_create_compress(&cinfo);
    jpeg_mem_dest(&cinfo, (unsigned char **)&buffer, &size);
    cinfo.image_width = (JDIMENSION)width;
    cinfo.image_height = (JDIMENSION)height;
    cinfo.input_components = channels;
    cinfo.in_color_space = channels == 1 ? JCS_GRAYSCALE : JCS_RGB;
    jpeg_set_defaults(&cinfo);
    jpeg_set_quality(&cinfo, quality, TRUE);
    jpeg_start_compress(&cinfo, TRUE);
    size_t rowBytes = (size_t)width * (size_t)channels;
    while (cinfo.next_scanline < cinfo.image_height) {
        JSAMPROW row = (JSAMPROW)(pixels + (size_t)cinfo.next_scanline * rowBytes);
        jpeg_write_scanlines(&cinfo, &row, 1);
    }
    jpeg_finish_compress(&cinfo);
    jpeg_destroy_compress(&cinfo);
    *outData = buffer;
    *outSize = size;
    return KV_OK;
}

void kv_free(void *pointer) { free(pointer); }

// MARK: PNG

typedef struct {
    jmp_buf jump;
    const unsigned char *data;
    size_t size;
    size_t offset;
    int truncated;
    kv_image_info *info;
} kv_png_ctx;

// libpng's error callback must not return; jump back to kv_png_run with the message recorded.
static void kv_png_error(png_structp png, png_const_charp message) {
    kv_png_ctx *ctx = (kv_png_ctx *)png_get_error_ptr(png);
    if (!ctx->truncated) kv_set_message(ctx->info, message);
    longjmp(ctx->jump, 1);
}

// Warnings (e.g. odd ancillary chunks) are ignored, as PIL ignores them.
static void kv_png_warning(png_structp png, png_const_charp message) {
    (void)png;
    (void)message;
}

static void kv_png_read(png_structp png, png_bytep out, size_t length) {
    kv_png_ctx *ctx = (kv_png_ctx *)png_get_io_ptr(png);
    if (length > ctx->size - ctx->offset) {
        ctx->truncated = 1;
        kv_set_message(ctx->info, "PNG data ends before the image does");
        png_error(png, "truncated");
    }
    memcpy(out, ctx->data + ctx->offset, length);
    ctx->offset += length;
}

static int kv_png_run(const unsigned char *data, size_t size, kv_image_info *info,
                      unsigned char *out, size_t outSize) {
    static const unsigned char signature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
    kv_png_ctx ctx;
    png_structp png = NULL;
    png_infop pinfo = NULL;
    png_bytep *volatile rows = NULL;
    memset(info, 0, sizeof(*info));
    if (size < 8 || memcmp(data, signature, 8) != 0) {
        kv_set_message(info, "not a PNG (bad signature)");
        return KV_NOT_THIS_FORMAT;
    }
    ctx.data = data;
    ctx.size = size;
    ctx.offset = 0;
    ctx.truncated = 0;
    ctx.info = info;
    png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &ctx, kv_png_error, kv_png_warning);
    if (png == NULL) {
        kv_set_message(info, "libpng could not allocate its state");
        return KV_OUT_OF_MEMORY;
    }
    pinfo = png_create_info_struct(png);
    if (pinfo == NULL) {
        png_destroy_read_struct(&png, NULL, NULL);
        kv_set_message(info, "libpng could not allocate its state");
        return KV_OUT_OF_MEMORY;
    }
    if (setjmp(ctx.jump)) {
        free(rows);
        png_destroy_read_struct(&png, &pinfo, NULL);
        return ctx.truncated ? KV_TRUNCATED : KV_CORRUPT;
    }
    png_set_read_fn(png, &ctx, kv_png_read);
    png_read_info(png, pinfo);
    png_uint_32 width = 0, height = 0;
    int bitDepth = 0, colorType = 0, interlace = 0;
    png_get_IHDR(png, pinfo, &width, &height, &bitDepth, &colorType, &interlace, NULL, NULL);
    info->width = (int)width;
    info->height = (int)height;
    // Transformations chosen to reproduce PIL's modes and its convert("RGB"):
    //  - palette expanded to RGB (transparency becomes a 4th channel that Swift drops);
    //  - 1/2/4-bit grey scaled to 0...255 (PIL's "1", "L;2", "L;4" raw modes do the same);
    //  - 16-bit samples keep their high byte (PIL's ";16B" raw modes), except 16-bit grey without
    //    alpha, which PIL opens as I;16 and clips to 255 when converting; Swift does that clip;
    //  - no gamma or colour management (PIL applies none).
    //  - a colour key (tRNS of an 8-bit-or-less grey or an RGB image) becomes an alpha channel,
    //    which Swift drops (PIL's convert("RGB") ignores the key) or composites over white.
    if (colorType == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
    if (png_get_valid(png, pinfo, PNG_INFO_tRNS)
        && (colorType == PNG_COLOR_TYPE_RGB || (colorType == PNG_COLOR_TYPE_GRAY && bitDepth <= 8))) {
        png_set_tRNS_to_alpha(png);
    }
    if (colorType == PNG_COLOR_TYPE_GRAY && bitDepth < 8) png_set_expand_gray_1_2_4_to_8(png);
    if (bitDepth == 16 && colorType != PNG_COLOR_TYPE_GRAY) png_set_strip_16(png);
    if (interlace != PNG_INTERLACE_NONE) png_set_interlace_handling(png);
    png_read_update_info(png, pinfo);
    info->channels = (int)png_get_channels(png, pinfo);
    info->bytesPerSample = png_get_bit_depth(png, pinfo) == 16 ? 2 : 1;
    if (out == NULL) {
        png_destroy_read_struct(&png, &pinfo, NULL);
        return KV_OK;
    }
    size_t rowBytes = png_get_rowbytes(png, pinfo);
    if (rowBytes != (size_t)width * (size_t)info->channels * (size_t)info->bytesPerSample
        || rowBytes * (size_t)height > outSize) {
        kv_set_message(info, "output buffer too small for the decoded image");
        png_destroy_read_struct(&png, &pinfo, NULL);
        return KV_BUFFER_TOO_SMALL;
    }
    rows = malloc(sizeof(png_bytep) * (size_t)height);
    if (rows == NULL) {
        kv_set_message(info, "out of memory for row pointers");
        png_destroy_read_struct(&png, &pinfo, NULL);
        return KV_OUT_OF_MEMORY;
    }
    for (png_uint_32 y = 0; y < height; y++) rows[y] = out + (size_t)y * rowBytes;
    png_read_image(png, rows);
    free(rows);
    rows = NULL;
    png_destroy_read_struct(&png, &pinfo, NULL);
    return KV_OK;
}

int kv_png_read_header(const unsigned char *data, size_t size, kv_image_info *info) {
    return kv_png_run(data, size, info, NULL, 0);
}

int kv_png_decode(const unsigned char *data, size_t size, kv_image_info *info,
                  unsigned char *out, size_t outSize) {
    if (out == NULL) {
        memset(info, 0, sizeof(*info));
        kv_set_message(info, "no output buffer");
        return KV_BUFFER_TOO_SMALL;
    }
    return kv_png_run(data, size, info, out, outSize);
}

// MARK: PNG writing

typedef struct {
    jmp_buf jump;
    unsigned char *data;
    size_t size;
    size_t capacity;
    int outOfMemory;
    kv_image_info *info;
} kv_png_writer;

static void kv_png_write_error(png_structp png, png_const_charp message) {
    kv_png_writer *w = (kv_png_writer *)png_get_error_ptr(png);
    if (!w->outOfMemory) kv_set_message(w->info, message);
    longjmp(w->jump, 1);
}

static void kv_png_write(png_structp png, png_bytep bytes, size_t length) {
    kv_png_writer *w = (kv_png_writer *)png_get_io_ptr(png);
    if (length > w->capacity - w->size) {
        size_t capacity = w->capacity ? w->capacity : 4096;
        while (length > capacity - w->size) {
            if (capacity > ((size_t)-1) / 2) { capacity = 0; break; }
            capacity *= 2;
        }
        unsigned char *grown = capacity ? realloc(w->data, capacity) : NULL;
        if (grown == NULL) {
            w->outOfMemory = 1;
            kv_set_message(w->info, "out of memory for the encoded PNG");
            png_error(png, "out of memory");
        }
        w->data = grown;
        w->capacity = capacity;
    }
    memcpy(w->data + w->size, bytes, length);
    w->size += length;
}

static void kv_png_flush(png_structp png) { (void)png; }

int kv_png_encode(const unsigned char *pixels, int width, int height, int channels,
                  unsigned char **outData, size_t *outSize, kv_image_info *info) {
    kv_png_writer w;
    png_structp png = NULL;
    png_infop pinfo = NULL;
    memset(info, 0, sizeof(*info));
    *outData = NULL;
    *outSize = 0;
    if (width <= 0 || height <= 0 || (channels != 1 && channels != 3) || pixels == NULL) {
        kv_set_message(info, "invalid image to encode");
        return KV_CORRUPT;
    }
    w.data = NULL;
    w.size = 0;
    w.capacity = 0;
    w.outOfMemory = 0;
    w.info = info;
    png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &w, kv_png_write_error, kv_png_warning);
    if (png == NULL) {
        kv_set_message(info, "libpng could not allocate its state");
        return KV_OUT_OF_MEMORY;
    }
    pinfo = png_create_info_struct(png);
    if (pinfo == NULL) {
        png_destroy_write_struct(&png, NULL);
        kv_set_message(info, "libpng could not allocate its state");
        return KV_OUT_OF_MEMORY;
    }
    if (setjmp(w.jump)) {
        png_destroy_write_struct(&png, &pinfo);
        free(w.data);
        return w.outOfMemory ? KV_OUT_OF_MEMORY : KV_CORRUPT;
    }
    png_set_write_fn(png, &w, kv_png_write, kv_png_flush);
    png_set_IHDR(png, pinfo, (png_uint_32)width, (png_uint_32)height, 8,
                 channels == 1 ? PNG_COLOR_TYPE_GRAY : PNG_COLOR_TYPE_RGB,
                 PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, pinfo);
    size_t rowBytes = (size_t)width * (size_t)channels;
    for (int y = 0; y < height; y++) {
        png_write_row(png, (png_const_bytep)(pixels + (size_t)y * rowBytes));
    }
    png_write_end(png, pinfo);
    png_destroy_write_struct(&png, &pinfo);
    *outData = w.data;
    *outSize = w.size;
    return KV_OK;
}

// MARK: - WebP

// The stubs of a codec built without its library's headers.
static int kv_unavailable(kv_image_info *info, const char *library, const char *package) {
    memset(info, 0, sizeof *info);
    snprintf(info->message, sizeof info->message, "built without %s (install %s and rebuild)", library, package);
    return KV_UNAVAILABLE;
}

#if defined(__linux__) && __has_include(<webp/decode.h>)
#include <webp/decode.h>

int kv_webp_read_header(const unsigned char *data, size_t size, kv_image_info *info) {
    memset(info, 0, sizeof *info);
    WebPBitstreamFeatures features;
    VP8StatusCode status = WebPGetFeatures(data, size, &features);
    if (status == VP8_STATUS_NOT_ENOUGH_DATA) return KV_TRUNCATED;
    if (status != VP8_STATUS_OK) {
        snprintf(info->message, sizeof info->message, "libwebp could not read the header (status %d)", (int)status);
        return KV_CORRUPT;
    }
    if (features.has_animation) {
        snprintf(info->message, sizeof info->message, "animated WebP is not read");
        return KV_CORRUPT;
    }
    info->width = features.width;
    info->height = features.height;
    info->channels = features.has_alpha ? 4 : 3;
    info->bytesPerSample = 1;
    return KV_OK;
}

int kv_webp_decode(const unsigned char *data, size_t size, kv_image_info *info,
                   unsigned char *out, size_t outSize) {
    size_t need = (size_t)info->width * (size_t)info->height * (size_t)info->channels;
    if (outSize < need) return KV_BUFFER_TOO_SMALL;
    int stride = info->width * info->channels;
    uint8_t *result = info->channels == 4 ? WebPDecodeRGBAInto(data, size, out, outSize, stride)
                                          : WebPDecodeRGBInto(data, size, out, outSize, stride);
    if (!result) {
        snprintf(info->message, sizeof info->message, "libwebp could not decode the image (truncated or corrupt)");
        return KV_CORRUPT;
    }
    return KV_OK;
}
#else
int kv_webp_read_header(const unsigned char *data, size_t size, kv_image_info *info) {
    (void)data; (void)size;
    return kv_unavailable(info, "libwebp", "libwebp-dev");
}

int kv_webp_decode(const unsigned char *data, size_t size, kv_image_info *info, unsigned char *out, size_t outSize) {
    (void)data; (void)size; (void)out; (void)outSize;
    return kv_unavailable(info, "libwebp", "libwebp-dev");
}
#endif

// MARK: TIFF

#if defined(__linux__) && __has_include(<tiffio.h>)
#include <tiffio.h>

typedef struct {
    const unsigned char *data;
    size_t size;
    size_t offset;
} kv_tiff_source;

static _Thread_local char kv_tiff_error[160];

static void kv_tiff_on_error(const char *module, const char *format, va_list args) {
    (void)module;
    vsnprintf(kv_tiff_error, sizeof kv_tiff_error, format, args);
}

static void kv_tiff_on_warning(const char *module, const char *format, va_list args) {
    (void)module; (void)format; (void)args;
}

static tmsize_t kv_tiff_read(thandle_t handle, void *buffer, tmsize_t count) {
    kv_tiff_source *s = (kv_tiff_source *)handle;
    size_t left = s->size - s->offset;
    size_t n = (size_t)count < left ? (size_t)count : left;
    memcpy(buffer, s->data + s->offset, n);
    s->offset += n;
    return (tmsize_t)n;
}

static tmsize_t kv_tiff_write(thandle_t handle, void *buffer, tmsize_t count) {
    (void)handle; (void)buffer; (void)count;
    return 0;
}

static toff_t kv_tiff_seek(thandle_t handle, toff_t offset, int whence) {
    kv_tiff_source *s = (kv_tiff_source *)handle;
    uint64_t base = whence == SEEK_CUR ? s->offset : (whence == SEEK_END ? s->size : 0);
    uint64_t target = base + offset;
    if (target > s->size) target = s->size;
    s->offset = (size_t)target;
    return (toff_t)target;
}

static int kv_tiff_close(thandle_t handle) { (void)handle; return 0; }
static toff_t kv_tiff_size(thandle_t handle) { return (toff_t)((kv_tiff_source *)handle)->size; }
static int kv_tiff_map(thandle_t handle, void **base, toff_t *size) {
    kv_tiff_source *s = (kv_tiff_source *)handle;
    *base = (void *)s->data;
    *size = (toff_t)s->size;
    return 1;
}
static void kv_tiff_unmap(thandle_t handle, void *base, toff_t size) { (void)handle; (void)base; (void)size; }

typedef struct {
    uint32_t width, height;
    uint16_t bits, samples, photometric, planar, compression;
    int channels;       // in the decoded buffer
    int lastIsAlpha;
    uint16_t *colormap[3];
} kv_tiff_layout;

// What the file holds and whether we read it; a message otherwise.
static int kv_tiff_layout_of(TIFF *tif, kv_tiff_layout *l, kv_image_info *info) {
    memset(l, 0, sizeof *l);
    TIFFGetField(tif, TIFFTAG_IMAGEWIDTH, &l->width);
    TIFFGetField(tif, TIFFTAG_IMAGELENGTH, &l->height);
    TIFFGetFieldDefaulted(tif, TIFFTAG_BITSPERSAMPLE, &l->bits);
    TIFFGetFieldDefaulted(tif, TIFFTAG_SAMPLESPERPIXEL, &l->samples);
    TIFFGetFieldDefaulted(tif, TIFFTAG_PLANARCONFIG, &l->planar);
    TIFFGetFieldDefaulted(tif, TIFFTAG_COMPRESSION, &l->compression);
    if (!TIFFGetField(tif, TIFFTAG_PHOTOMETRIC, &l->photometric)) {
        snprintf(info->message, sizeof info->message, "no PhotometricInterpretation tag");
        return KV_CORRUPT;
    }
    uint16_t extraCount = 0, *extra = NULL;
    TIFFGetFieldDefaulted(tif, TIFFTAG_EXTRASAMPLES, &extraCount, &extra);
    if (extraCount > 0 && extra[0] == EXTRASAMPLE_ASSOCALPHA) {
        snprintf(info->message, sizeof info->message, "premultiplied (associated) alpha is not supported; save with unassociated alpha");
        return KV_CORRUPT;
    }
    l->lastIsAlpha = extraCount > 0 && extra[0] == EXTRASAMPLE_UNASSALPHA;
    int colour = 0;
    switch (l->photometric) {
    case PHOTOMETRIC_MINISBLACK:
    case PHOTOMETRIC_MINISWHITE:
        colour = 1;
        break;
    case PHOTOMETRIC_RGB:
        colour = 3;
        break;
    case PHOTOMETRIC_YCBCR:
        if (l->compression != COMPRESSION_JPEG) {
            snprintf(info->message, sizeof info->message, "YCbCr TIFF without JPEG compression is not supported");
            return KV_CORRUPT;
        }
        // libjpeg converts to RGB as it decodes.
        TIFFSetField(tif, TIFFTAG_JPEGCOLORMODE, JPEGCOLORMODE_RGB);
        l->photometric = PHOTOMETRIC_RGB;
        colour = 3;
        break;
    case PHOTOMETRIC_PALETTE:
        if (!TIFFGetField(tif, TIFFTAG_COLORMAP, &l->colormap[0], &l->colormap[1], &l->colormap[2])) {
            snprintf(info->message, sizeof info->message, "a palette image without a colour map");
            return KV_CORRUPT;
        }
        colour = 1;
        break;
    default:
        snprintf(info->message, sizeof info->message, "photometric interpretation %u (e.g. CMYK, Lab) is not supported", l->photometric);
        return KV_CORRUPT;
    }
    int bilevel = l->bits == 1 && colour == 1 && l->photometric != PHOTOMETRIC_PALETTE && l->samples == 1;
    if (l->bits != 8 && !bilevel) {
        snprintf(info->message, sizeof info->message, "%u-bit samples are not supported (8-bit, or 1-bit black and white)", l->bits);
        return KV_CORRUPT;
    }
    if (l->samples < colour || l->samples > colour + 1) {
        snprintf(info->message, sizeof info->message, "%u samples per pixel for photometric %u", l->samples, l->photometric);
        return KV_CORRUPT;
    }
    if (l->width == 0 || l->height == 0) {
        snprintf(info->message, sizeof info->message, "zero width or height");
        return KV_CORRUPT;
    }
    l->channels = l->photometric == PHOTOMETRIC_PALETTE ? 3 + (l->samples > 1) : l->samples;
    info->width = (int)l->width;
    info->height = (int)l->height;
    info->channels = l->channels;
    info->bytesPerSample = 1;
    info->lastIsAlpha = l->lastIsAlpha;
    return KV_OK;
}

// One decoded row of stored samples (8-bit, interleaved) into the output's layout.
static void kv_tiff_emit(const kv_tiff_layout *l, const unsigned char *stored, unsigned char *row) {
    uint32_t w = l->width;
    int s = l->samples;
    if (l->bits == 1) {
        for (uint32_t x = 0; x < w; x++) {
            int bit = (stored[x >> 3] >> (7 - (x & 7))) & 1;
            if (l->photometric == PHOTOMETRIC_MINISWHITE) bit = !bit;
            row[x] = bit ? 255 : 0;
        }
        return;
    }
    for (uint32_t x = 0; x < w; x++) {
        const unsigned char *p = stored + (size_t)x * s;
        if (l->photometric == PHOTOMETRIC_PALETTE) {
            unsigned char *o = row + (size_t)x * l->channels;
            o[0] = (unsigned char)(l->colormap[0][p[0]] >> 8);
            o[1] = (unsigned char)(l->colormap[1][p[0]] >> 8);
            o[2] = (unsigned char)(l->colormap[2][p[0]] >> 8);
            if (s > 1) o[3] = p[1];
        } else {
            unsigned char *o = row + (size_t)x * s;
            for (int c = 0; c < s; c++) o[c] = p[c];
            if (l->photometric == PHOTOMETRIC_MINISWHITE) o[0] = (unsigned char)(255 - o[0]);
        }
    }
}

static TIFF *kv_tiff_open(kv_tiff_source *source) {
    kv_tiff_error[0] = 0;
    TIFFSetErrorHandler(kv_tiff_on_error);
    TIFFSetWarningHandler(kv_tiff_on_warning);
    return TIFFClientOpen("image", "rm", (thandle_t)source, kv_tiff_read, kv_tiff_write, kv_tiff_seek, kv_tiff_close,
                          kv_tiff_size, kv_tiff_map, kv_tiff_unmap);
}

static int kv_tiff_fail(TIFF *tif, kv_image_info *info, const char *what) {
    snprintf(info->message, sizeof info->message, "%s%s%s", what, kv_tiff_error[0] ? ": " : "", kv_tiff_error);
    if (tif) TIFFClose(tif);
    return strstr(kv_tiff_error, "end of file") || strstr(kv_tiff_error, "short") || strstr(kv_tiff_error, "Read error") ? KV_TRUNCATED : KV_CORRUPT;
}

int kv_tiff_read_header(const unsigned char *data, size_t size, kv_image_info *info) {
    memset(info, 0, sizeof *info);
    kv_tiff_source source = { data, size, 0 };
    TIFF *tif = kv_tiff_open(&source);
    if (!tif) return kv_tiff_fail(NULL, info, "libtiff could not read the header");
    kv_tiff_layout l;
    int status = kv_tiff_layout_of(tif, &l, info);
    TIFFClose(tif);
    return status;
}

int kv_tiff_decode(const unsigned char *data, size_t size, kv_image_info *info,
                   unsigned char *out, size_t outSize) {
    memset(info, 0, sizeof *info);
    kv_tiff_source source = { data, size, 0 };
    TIFF *tif = kv_tiff_open(&source);
    if (!tif) return kv_tiff_fail(NULL, info, "libtiff could not read the header");
    kv_tiff_layout l;
    int status = kv_tiff_layout_of(tif, &l, info);
    if (status != KV_OK) { TIFFClose(tif); return status; }
    size_t rowBytes = (size_t)l.width * (size_t)l.channels;
    if (out == NULL || rowBytes * l.height > outSize) {
        snprintf(info->message, sizeof info->message, "output buffer too small for the decoded image");
        TIFFClose(tif);
        return KV_BUFFER_TOO_SMALL;
    }
    // Stored samples of one row, interleaved (planar files are gathered into this layout).
    size_t storedRow = l.bits == 1 ? (l.width + 7) / 8 : (size_t)l.width * l.samples;
    unsigned char *stored = malloc(storedRow);
    if (!stored) { TIFFClose(tif); return KV_OUT_OF_MEMORY; }
    if (TIFFIsTiled(tif)) {
        uint32_t tw = 0, th = 0;
        TIFFGetField(tif, TIFFTAG_TILEWIDTH, &tw);
        TIFFGetField(tif, TIFFTAG_TILELENGTH, &th);
        tmsize_t tileSize = TIFFTileSize(tif);
        unsigned char *tile = tw && th && tileSize > 0 ? malloc((size_t)tileSize) : NULL;
        // Whole rows of stored samples for one band of tiles.
        unsigned char *band = tile ? malloc(storedRow * th) : NULL;
        if (!tile || !band || l.bits != 8) {
            free(tile); free(band); free(stored);
            if (tile && band) { snprintf(info->message, sizeof info->message, "1-bit tiled TIFF is not supported"); TIFFClose(tif); return KV_CORRUPT; }
            TIFFClose(tif);
            return KV_OUT_OF_MEMORY;
        }
        int planes = l.planar == PLANARCONFIG_SEPARATE ? l.samples : 1;
        int perPixel = l.planar == PLANARCONFIG_SEPARATE ? 1 : l.samples;
        for (uint32_t y0 = 0; y0 < l.height && status == KV_OK; y0 += th) {
            for (uint32_t x0 = 0; x0 < l.width && status == KV_OK; x0 += tw) {
                for (int plane = 0; plane < planes; plane++) {
                    if (TIFFReadTile(tif, tile, x0, y0, 0, (uint16_t)plane) < 0) { status = -1; break; }
                    for (uint32_t ty = 0; ty < th && y0 + ty < l.height; ty++) {
                        for (uint32_t tx = 0; tx < tw && x0 + tx < l.width; tx++) {
                            const unsigned char *src = tile + ((size_t)ty * tw + tx) * perPixel;
                            unsigned char *dst = band + ty * storedRow + (size_t)(x0 + tx) * l.samples;
                            if (planes > 1) dst[plane] = src[0]; else memcpy(dst, src, (size_t)l.samples);
                        }
                    }
                }
            }
            for (uint32_t ty = 0; ty < th && y0 + ty < l.height && status == KV_OK; ty++) {
                kv_tiff_emit(&l, band + ty * storedRow, out + (size_t)(y0 + ty) * rowBytes);
            }
        }
        free(tile); free(band);
    } else if (l.planar == PLANARCONFIG_SEPARATE && l.samples > 1) {
        // One plane at a time, each row of each plane gathered into its interleaved place.
        unsigned char *plane = malloc(l.width);
        unsigned char *all = plane ? malloc(storedRow * l.height) : NULL;
        if (!plane || !all) { free(plane); free(all); free(stored); TIFFClose(tif); return KV_OUT_OF_MEMORY; }
        for (uint16_t sample = 0; sample < l.samples && status == KV_OK; sample++) {
            for (uint32_t y = 0; y < l.height; y++) {
                if (TIFFReadScanline(tif, plane, y, sample) < 0) { status = -1; break; }
                for (uint32_t x = 0; x < l.width; x++) all[y * storedRow + (size_t)x * l.samples + sample] = plane[x];
            }
        }
        for (uint32_t y = 0; y < l.height && status == KV_OK; y++) kv_tiff_emit(&l, all + y * storedRow, out + (size_t)y * rowBytes);
        free(plane); free(all);
    } else {
        tmsize_t scanline = TIFFScanlineSize(tif);
        unsigned char *line = scanline > 0 && (size_t)scanline >= storedRow ? malloc((size_t)scanline) : NULL;
        if (!line) { free(stored); TIFFClose(tif); return scanline > 0 ? KV_OUT_OF_MEMORY : kv_tiff_fail(NULL, info, "bad scanline size"); }
        for (uint32_t y = 0; y < l.height; y++) {
            if (TIFFReadScanline(tif, line, y, 0) < 0) { status = -1; break; }
            kv_tiff_emit(&l, line, out + (size_t)y * rowBytes);
        }
        free(line);
    }
    free(stored);
    if (status != KV_OK) return kv_tiff_fail(tif, info, "libtiff could not decode the image");
    TIFFClose(tif);
    info->width = (int)l.width;
    info->height = (int)l.height;
    info->channels = l.channels;
    info->bytesPerSample = 1;
    info->lastIsAlpha = l.lastIsAlpha;
    return KV_OK;
}
#else
int kv_tiff_read_header(const unsigned char *data, size_t size, kv_image_info *info) {
    (void)data; (void)size;
    return kv_unavailable(info, "libtiff", "libtiff-dev");
}

int kv_tiff_decode(const unsigned char *data, size_t size, kv_image_info *info, unsigned char *out, size_t outSize) {
    (void)data; (void)size; (void)out; (void)outSize;
    return kv_unavailable(info, "libtiff", "libtiff-dev");
}
#endif
