// See ka_audio.h for why this file exists: the FFmpeg demux -> decode -> resample loop, kept on
// the C side so that Swift sees only plain types, a status code and a message.
// fseeko/ftello/fileno are POSIX, hidden by a strict -std=c11 on glibc; macOS declares them anyway.
#if !defined(__APPLE__) && !defined(_POSIX_C_SOURCE) && !defined(_GNU_SOURCE)
#define _POSIX_C_SOURCE 200809L
#endif
#define _FILE_OFFSET_BITS 64
#include "ka_audio.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__has_include)
#if __has_include(<libavformat/avformat.h>) && __has_include(<libavcodec/avcodec.h>) && \
    __has_include(<libswresample/swresample.h>) && __has_include(<libavutil/opt.h>)
#define KA_HAVE_HEADERS 1
#endif
#endif

#if defined(KA_HAVE_HEADERS)
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/channel_layout.h>
#include <libavutil/mathematics.h>
#include <libavutil/opt.h>
#include <libswresample/swresample.h>
// The AVChannelLayout API (ch_layout, swr_alloc_set_opts2) arrived in FFmpeg 5.1.
#if LIBAVUTIL_VERSION_INT >= AV_VERSION_INT(57, 24, 100) && \
    LIBAVCODEC_VERSION_INT >= AV_VERSION_INT(59, 24, 100) && \
    LIBSWRESAMPLE_VERSION_INT >= AV_VERSION_INT(4, 5, 100)
#define KA_HAVE_FFMPEG 1
#endif
#endif

static int ka_fail(ka_audio *out, int status, const char *format, ...) {
    va_list args;
    va_start(args, format);
    vsnprintf(out->message, sizeof(out->message), format, args);
    va_end(args);
    return status;
}

static void ka_reset(ka_audio *out) {
    memset(out, 0, sizeof(*out));
    out->source_frames_estimate = -1;
}

void ka_free(ka_audio *a) {
    if (a == NULL) return;
    free(a->samples);
    a->samples = NULL;
    a->frames = 0;
}

#if !defined(KA_HAVE_FFMPEG)

// MARK: Stubs (built without FFmpeg 5.1+)

#define KA_NOT_AVAILABLE_TEXT "FFmpeg is not available: Kosmos was built without the FFmpeg 5.1+ " \
    "headers (libavformat, libavcodec, libswresample, libavutil)"

const char *ka_version(void) { return KA_NOT_AVAILABLE_TEXT; }

int ka_decode_file(const char *path, int target_rate, int64_t max_frames, ka_audio *out) {
    (void)path; (void)target_rate; (void)max_frames;
    if (out == NULL) return KA_NOT_AVAILABLE;
    ka_reset(out);
    return ka_fail(out, KA_NOT_AVAILABLE, "%s", KA_NOT_AVAILABLE_TEXT);
}

int ka_decode_memory(const uint8_t *data, size_t size, int target_rate, int64_t max_frames,
                     ka_audio *out) {
    (void)data; (void)size; (void)target_rate; (void)max_frames;
    if (out == NULL) return KA_NOT_AVAILABLE;
    ka_reset(out);
    return ka_fail(out, KA_NOT_AVAILABLE, "%s", KA_NOT_AVAILABLE_TEXT);
}

int ka_resample(const float *in, int64_t frames, int channels, int in_rate, int out_rate,
                ka_audio *out) {
    (void)in; (void)frames; (void)channels; (void)in_rate; (void)out_rate;
    if (out == NULL) return KA_NOT_AVAILABLE;
    ka_reset(out);
    return ka_fail(out, KA_NOT_AVAILABLE, "%s", KA_NOT_AVAILABLE_TEXT);
}

#else

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <sys/stat.h>

enum {
    KA_IO_BUFFER = 32768,          // AVIOContext buffer
    KA_MAX_OUT_PER_CALL = 1 << 22, // swr_convert is given at most about this many output frames
    KA_MAX_DOWNSAMPLING = 256,     // in_rate / out_rate limit: swr's filter grows with the ratio
    KA_MAX_ERROR_LOOP = 1024,      // safety bound on consecutive errors from one receive loop
};

// MARK: One-time setup

static pthread_once_t ka_once = PTHREAD_ONCE_INIT;
static char ka_version_text[160];

typedef struct ka_decoder ka_decoder;
static void ka_note_error(ka_decoder *d, const char *what, int err);

// The decode running on this thread while it reads packets, if any. FFmpeg reports some damage
// only in its log (an Ogg page with a bad CRC is dropped with "CRC mismatch!", the packet read
// goes on), so error-level log lines during the packet loop count as decode errors. Everything
// of one call runs on the calling thread (decoders run with thread_count 1), so a thread-local
// pointer routes the lines to the right call.
static _Thread_local ka_decoder *ka_logging_decoder;

// Installed once, process-wide: prints nothing (FFmpeg stays quiet on stderr).
static void ka_log(void *context, int level, const char *format, va_list args) {
    ka_decoder *d = ka_logging_decoder;
    if (d == NULL || level > AV_LOG_ERROR) return;
    char text[160];
    const char *who = NULL;
    if (context != NULL) {
        const AVClass *c = *(const AVClass **)context;
        if (c != NULL && c->item_name != NULL) who = c->item_name(context);
    }
    int n = snprintf(text, sizeof(text), "%s%s", who != NULL ? who : "", who != NULL ? ": " : "");
    if (n < 0 || (size_t)n >= sizeof(text)) n = 0;
    vsnprintf(text + n, sizeof(text) - (size_t)n, format, args);
    size_t length = strlen(text);
    while (length > 0 && (text[length - 1] == '\n' || text[length - 1] == ' ')) text[--length] = 0;
    ka_note_error(d, text, 0);
}

static void ka_init(void) {
    av_log_set_level(AV_LOG_QUIET);   // also skips FFmpeg's own verbose-only work
    av_log_set_callback(ka_log);
    unsigned f = avformat_version(), c = avcodec_version(), s = swresample_version(),
             u = avutil_version();
    snprintf(ka_version_text, sizeof(ka_version_text),
             "libavformat %u.%u.%u, libavcodec %u.%u.%u, libswresample %u.%u.%u, libavutil %u.%u.%u",
             AV_VERSION_MAJOR(f), AV_VERSION_MINOR(f), AV_VERSION_MICRO(f),
             AV_VERSION_MAJOR(c), AV_VERSION_MINOR(c), AV_VERSION_MICRO(c),
             AV_VERSION_MAJOR(s), AV_VERSION_MINOR(s), AV_VERSION_MICRO(s),
             AV_VERSION_MAJOR(u), AV_VERSION_MINOR(u), AV_VERSION_MICRO(u));
}

static void ka_init_once(void) { pthread_once(&ka_once, ka_init); }

const char *ka_version(void) {
    ka_init_once();
    return ka_version_text;
}

static void ka_error_text(int err, char *buffer, size_t size) {
    if (av_strerror(err, buffer, size) < 0) snprintf(buffer, size, "error %d", err);
}

// MARK: Input (our own reader for both files and memory)

typedef struct {
    const uint8_t *data;   // memory input
    size_t size;
    size_t pos;
    FILE *file;            // file input
    int64_t file_size;     // -1 when unknown (not a regular file)
} ka_source;

static int ka_read(void *opaque, uint8_t *buf, int buf_size) {
    ka_source *s = (ka_source *)opaque;
    if (buf_size <= 0) return 0;
    if (s->file != NULL) {
        size_t n = fread(buf, 1, (size_t)buf_size, s->file);
        if (n == 0) return ferror(s->file) ? AVERROR(EIO) : AVERROR_EOF;
        return (int)n;
    }
    if (s->pos >= s->size) return AVERROR_EOF;
    size_t n = s->size - s->pos;
    if (n > (size_t)buf_size) n = (size_t)buf_size;
    memcpy(buf, s->data + s->pos, n);
    s->pos += n;
    return (int)n;
}

static int64_t ka_seek(void *opaque, int64_t offset, int whence) {
    ka_source *s = (ka_source *)opaque;
    int64_t size = s->file != NULL ? s->file_size : (int64_t)s->size;
    int64_t base;
    whence &= ~AVSEEK_FORCE;
    if (whence == AVSEEK_SIZE) return size >= 0 ? size : AVERROR(ENOSYS);
    switch (whence) {
    case SEEK_SET: base = 0; break;
    case SEEK_CUR:
        if (s->file != NULL) {
            base = (int64_t)ftello(s->file);
            if (base < 0) return AVERROR(errno);
        } else {
            base = (int64_t)s->pos;
        }
        break;
    case SEEK_END:
        if (size < 0) return AVERROR(ENOSYS);
        base = size;
        break;
    default: return AVERROR(EINVAL);
    }
    if ((offset > 0 && base > INT64_MAX - offset) || base + offset < 0) return AVERROR(EINVAL);
    int64_t target = base + offset;
    if (s->file != NULL) {
        if (fseeko(s->file, (off_t)target, SEEK_SET) != 0) return AVERROR(errno);
    } else {
        s->pos = (uint64_t)target > (uint64_t)SIZE_MAX ? SIZE_MAX : (size_t)target;
    }
    return target;
}

// Demuxers that open further files (playlists, concat scripts, image sequences, MP4 drefs) get
// nothing: we decode the one input we were given.
static int ka_io_open_refused(AVFormatContext *s, AVIOContext **pb, const char *url, int flags,
                              AVDictionary **options) {
    (void)s; (void)pb; (void)url; (void)flags; (void)options;
    return AVERROR(EPERM);
}

// MARK: Output (swr into a growing interleaved float buffer)

typedef struct {
    ka_audio *out;
    SwrContext *swr;
    int started;              // the first frame has set channels and out_rate
    int channels;             // fixed by the first frame
    int out_rate;
    int in_rate;              // swr's current input
    int in_format;
    int64_t max_frames;       // <= 0: no limit
    float *buf;
    int64_t cap;              // in frames
    int64_t frames;
} ka_sink;

static int ka_swr_option_failed(ka_sink *k, const char *name, int err) {
    char text[96];
    ka_error_text(err, text, sizeof(text));
    return ka_fail(k->out, err == AVERROR(ENOMEM) ? KA_OUT_OF_MEMORY : KA_CORRUPT,
                   "libswresample rejects option %s: %s", name, text);
}

// The resampler settings documented in ka_audio.h. Input and output use the same channel layout
// (unspecified order, `channels` channels), so swr never rematrixes.
static int ka_swr_open(ka_sink *k, enum AVSampleFormat in_format, int in_rate) {
    if ((int64_t)in_rate > (int64_t)KA_MAX_DOWNSAMPLING * k->out_rate) {
        return ka_fail(k->out, KA_BAD_ARGUMENT, "resampling %d Hz to %d Hz: more than %d:1 is not "
                       "supported", in_rate, k->out_rate, KA_MAX_DOWNSAMPLING);
    }
    AVChannelLayout layout;
    memset(&layout, 0, sizeof(layout));
    layout.order = AV_CHANNEL_ORDER_UNSPEC;
    layout.nb_channels = k->channels;
    SwrContext *swr = NULL;
    int r = swr_alloc_set_opts2(&swr, &layout, AV_SAMPLE_FMT_FLT, k->out_rate, &layout, in_format,
                                in_rate, 0, NULL);
    if (r < 0 || swr == NULL) {
        swr_free(&swr);
        return ka_swr_option_failed(k, "(channel layout / rates / formats)", r < 0 ? r : AVERROR(ENOMEM));
    }
    struct { const char *name; int64_t value; } ints[] = {
        {"resampler", SWR_ENGINE_SWR},
        {"filter_size", 32},
        {"phase_shift", 10},
        {"linear_interp", 1},
        {"exact_rational", 1},
        {"filter_type", SWR_FILTER_TYPE_KAISER},
        {"dither_method", SWR_DITHER_NONE},
    };
    for (size_t i = 0; i < sizeof(ints) / sizeof(ints[0]); i++) {
        if ((r = av_opt_set_int(swr, ints[i].name, ints[i].value, 0)) < 0) {
            swr_free(&swr);
            return ka_swr_option_failed(k, ints[i].name, r);
        }
    }
    if ((r = av_opt_set_double(swr, "cutoff", 0.97, 0)) < 0 ||
        (r = av_opt_set_double(swr, "kaiser_beta", 9.0, 0)) < 0 ||
        (r = av_opt_set_sample_fmt(swr, "internal_sample_fmt", AV_SAMPLE_FMT_FLTP, 0)) < 0) {
        swr_free(&swr);
        return ka_swr_option_failed(k, "cutoff/kaiser_beta/internal_sample_fmt", r);
    }
    if ((r = swr_init(swr)) < 0) {
        swr_free(&swr);
        return ka_swr_option_failed(k, "(swr_init)", r);
    }
    k->swr = swr;
    k->in_format = in_format;
    k->in_rate = in_rate;
    return KA_OK;
}

static int ka_reserve(ka_sink *k, int64_t extra) {
    if (extra < 0 || k->frames > INT64_MAX - extra) {
        return ka_fail(k->out, KA_OUT_OF_MEMORY, "output too large");
    }
    int64_t need = k->frames + extra;
    if (need <= k->cap) return KA_OK;
    int64_t limit = (int64_t)(SIZE_MAX / sizeof(float) / (size_t)k->channels);
    if (limit > INT64_MAX / 2) limit = INT64_MAX / 2;
    if (need > limit) return ka_fail(k->out, KA_OUT_OF_MEMORY, "output too large (%lld frames)",
                                     (long long)need);
    int64_t cap = k->cap > 0 ? k->cap * 2 : 4096;
    if (cap < need) cap = need;
    // No point in growing far beyond what max_frames allows.
    if (k->max_frames > 0 && cap > k->max_frames + 1 && need <= k->max_frames + 1) {
        cap = k->max_frames + 1;
    }
    if (cap > limit) cap = limit;
    float *grown = (float *)realloc(k->buf, (size_t)cap * (size_t)k->channels * sizeof(float));
    if (grown == NULL) {
        return ka_fail(k->out, KA_OUT_OF_MEMORY, "cannot allocate %lld output frames",
                       (long long)cap);
    }
    k->buf = grown;
    k->cap = cap;
    return KA_OK;
}

// Feeds `count` frames (input == NULL: flushes, repeating until swr has nothing left).
static int ka_convert_piece(ka_sink *k, const uint8_t *const *input, int count) {
    for (;;) {
        int bound = swr_get_out_samples(k->swr, input != NULL ? count : 0);
        if (bound < 0) return ka_swr_option_failed(k, "(swr_get_out_samples)", bound);
        if (input == NULL && bound < 256) bound = 256;
        int status = ka_reserve(k, bound);
        if (status != KA_OK) return status;
        uint8_t *dst = (uint8_t *)(k->buf + k->frames * k->channels);
        int n = swr_convert(k->swr, &dst, bound, (const uint8_t **)input, input != NULL ? count : 0);
        if (n < 0) {
            char text[96];
            ka_error_text(n, text, sizeof(text));
            return ka_fail(k->out, n == AVERROR(ENOMEM) ? KA_OUT_OF_MEMORY : KA_CORRUPT,
                           "libswresample failed: %s", text);
        }
        k->frames += n;
        if (k->max_frames > 0 && k->frames > k->max_frames) {
            return ka_fail(k->out, KA_TOO_LONG, "longer than the limit of %lld frames at %d Hz",
                           (long long)k->max_frames, k->out_rate);
        }
        if (input != NULL || n == 0) return KA_OK;
    }
}

// Feeds `count` frames in `input` (swr's input format: one pointer per channel if planar, else
// one), in pieces small enough that the output count of one swr_convert stays far below INT_MAX
// even when upsampling by a large ratio.
static int ka_convert(ka_sink *k, const uint8_t *const *input, int64_t count) {
    int64_t piece = (int64_t)KA_MAX_OUT_PER_CALL * k->in_rate / k->out_rate;
    if (piece < 1) piece = 1;
    if (piece > KA_MAX_OUT_PER_CALL) piece = KA_MAX_OUT_PER_CALL;
    if (count <= piece) return ka_convert_piece(k, input, (int)count);
    enum AVSampleFormat format = (enum AVSampleFormat)k->in_format;
    int planar = av_sample_fmt_is_planar(format);
    size_t stride = (size_t)av_get_bytes_per_sample(format) * (planar ? 1 : (size_t)k->channels);
    const uint8_t *pointers[KA_MAX_CHANNELS];
    int planes = planar ? k->channels : 1;
    for (int64_t done = 0; done < count; done += piece) {
        int64_t n = count - done < piece ? count - done : piece;
        for (int c = 0; c < planes; c++) pointers[c] = input[c] + (size_t)done * stride;
        int status = ka_convert_piece(k, pointers, (int)n);
        if (status != KA_OK) return status;
    }
    return KA_OK;
}

static int ka_flush(ka_sink *k) {
    if (k->swr == NULL) return KA_OK;
    int status = ka_convert_piece(k, NULL, 0);
    swr_free(&k->swr);
    return status;
}

static void ka_sink_finish(ka_sink *k, int status) {
    swr_free(&k->swr);
    if (status == KA_OK && k->frames > 0) {
        float *exact = (float *)realloc(k->buf, (size_t)k->frames * (size_t)k->channels * sizeof(float));
        k->out->samples = exact != NULL ? exact : k->buf;
        k->out->frames = k->frames;
    } else {
        free(k->buf);
        k->out->samples = NULL;
        k->out->frames = 0;
    }
    k->buf = NULL;
}

static int ka_valid_rate(int64_t rate) { return rate >= 1 && rate <= KA_MAX_SAMPLE_RATE; }
static int ka_valid_channels(int64_t channels) { return channels >= 1 && channels <= KA_MAX_CHANNELS; }

// MARK: Decoding

struct ka_decoder {
    ka_sink sink;
    AVCodecContext *dec;
    AVFrame *frame;
    int target_rate;
    int64_t source_frames;    // decoded frames at the source rate
    int rate_changed;         // the sample rate changed mid-stream
    int errors_pending;       // decode errors since the last good frame
    char error_text[160];     // the first of them
};

static void ka_note_error(ka_decoder *d, const char *what, int err) {
    if (d->errors_pending++ == 0) {
        char text[96];
        if (err != 0) ka_error_text(err, text, sizeof(text)); else text[0] = 0;
        snprintf(d->error_text, sizeof(d->error_text), "%s%s%s", what, err != 0 ? ": " : "", text);
    }
}

static int ka_take_frame(ka_decoder *d, const AVFrame *f) {
    ka_sink *k = &d->sink;
    if (f->nb_samples <= 0) return KA_OK;
    int channels = f->ch_layout.nb_channels;
    if (!ka_valid_rate(f->sample_rate)) {
        return ka_fail(k->out, KA_CORRUPT, "decoded frame has sample rate %d (allowed: 1...%d)",
                       f->sample_rate, KA_MAX_SAMPLE_RATE);
    }
    if (!ka_valid_channels(channels)) {
        return ka_fail(k->out, KA_CORRUPT, "decoded frame has %d channels (allowed: 1...%d)",
                       channels, KA_MAX_CHANNELS);
    }
    if (f->format < 0 || f->format >= AV_SAMPLE_FMT_NB) {
        return ka_fail(k->out, KA_CORRUPT, "decoded frame has an unknown sample format");
    }
    if (d->errors_pending > 0) {
        return ka_fail(k->out, KA_CORRUPT, "corrupt data in the middle of the stream (%d error%s "
                       "before output frame %lld): %s", d->errors_pending,
                       d->errors_pending == 1 ? "" : "s", (long long)k->frames, d->error_text);
    }
    int status;
    if (!k->started) {
        k->started = 1;
        k->channels = channels;
        k->out_rate = d->target_rate > 0 ? d->target_rate : f->sample_rate;
        k->out->channels = channels;
        k->out->source_rate = f->sample_rate;
        k->out->output_rate = k->out_rate;
        // First allocation sized from the container's duration (bounded, it may be wrong).
        int64_t guess = k->out->source_frames_estimate;
        if (guess > 0) {
            guess = av_rescale_rnd(guess, k->out_rate, f->sample_rate, AV_ROUND_UP);
            if (guess < 0 || guess > (1 << 22)) guess = 1 << 22;
            if (k->max_frames > 0 && guess > k->max_frames + 1) guess = k->max_frames + 1;
            if ((status = ka_reserve(k, guess + 1024)) != KA_OK) return status;
        }
        if ((status = ka_swr_open(k, (enum AVSampleFormat)f->format, f->sample_rate)) != KA_OK) {
            return status;
        }
    } else if (channels != k->channels) {
        return ka_fail(k->out, KA_CORRUPT, "channel count changes from %d to %d mid-stream",
                       k->channels, channels);
    } else if (k->swr == NULL || f->format != k->in_format || f->sample_rate != k->in_rate) {
        // Sample rate or format change mid-stream: finish the old resampler, start a new one.
        if (f->sample_rate != k->in_rate) d->rate_changed = 1;
        if ((status = ka_flush(k)) != KA_OK) return status;
        if ((status = ka_swr_open(k, (enum AVSampleFormat)f->format, f->sample_rate)) != KA_OK) {
            return status;
        }
    }
    d->source_frames += f->nb_samples;
    return ka_convert(k, (const uint8_t *const *)f->extended_data, f->nb_samples);
}

static int ka_receive(ka_decoder *d) {
    int consecutive_errors = 0;
    for (;;) {
        int r = avcodec_receive_frame(d->dec, d->frame);
        if (r == AVERROR(EAGAIN) || r == AVERROR_EOF) return KA_OK;
        if (r < 0) {
            ka_note_error(d, "decode error", r);
            if (++consecutive_errors > KA_MAX_ERROR_LOOP) return KA_OK;
            continue;
        }
        consecutive_errors = 0;
        int status = ka_take_frame(d, d->frame);
        av_frame_unref(d->frame);
        if (status != KA_OK) return status;
    }
}

// Sends one packet (NULL: flush) and takes every frame the decoder has ready.
static int ka_send(ka_decoder *d, const AVPacket *pkt) {
    for (int attempt = 0; attempt < 2; attempt++) {
        int r = avcodec_send_packet(d->dec, pkt);
        if (r == AVERROR(EAGAIN)) {
            // Not expected after draining, but the API allows it: drain, then send once more.
            int status = ka_receive(d);
            if (status != KA_OK) return status;
            continue;
        }
        if (r < 0 && r != AVERROR_EOF) ka_note_error(d, "decode error", r);
        break;
    }
    return ka_receive(d);
}

static void ka_close_input(AVFormatContext **fmt, AVIOContext **pb) {
    avformat_close_input(fmt);   // custom I/O: leaves pb to us
    if (*pb != NULL) {
        av_freep(&(*pb)->buffer); // may no longer be our buffer: libavformat can reallocate it
        avio_context_free(pb);
    }
}

enum { KA_OPEN_NO_MEMORY = 1 };  // ka_open_input: our own allocations failed

// Opens the container on our reader. Returns 0, an AVERROR from avformat_open_input, or
// KA_OPEN_NO_MEMORY; on failure *fmt and *pb are NULL.
static int ka_open_input(ka_source *src, const char *name_hint, AVFormatContext **fmt,
                         AVIOContext **pb) {
    *fmt = NULL;
    uint8_t *io_buffer = (uint8_t *)av_malloc(KA_IO_BUFFER);
    if (io_buffer == NULL) return KA_OPEN_NO_MEMORY;
    *pb = avio_alloc_context(io_buffer, KA_IO_BUFFER, 0, src, ka_read, NULL, ka_seek);
    if (*pb == NULL) {
        av_free(io_buffer);
        return KA_OPEN_NO_MEMORY;
    }
    *fmt = avformat_alloc_context();
    if (*fmt == NULL) {
        ka_close_input(fmt, pb);
        return KA_OPEN_NO_MEMORY;
    }
    (*fmt)->pb = *pb;
    (*fmt)->io_open = ka_io_open_refused;
    // No URL protocol at all for anything a demuxer might try to open by itself.
    AVDictionary *options = NULL;
    av_dict_set(&options, "protocol_whitelist", "none", 0);
    int r = avformat_open_input(fmt, name_hint != NULL ? name_hint : "", NULL, &options);
    av_dict_free(&options);
    if (r < 0) ka_close_input(fmt, pb);  // *fmt has been freed already
    return r;
}

// Picks the first audio stream, checks what the container states, opens its decoder.
// Returns a status; on KA_OK *index is the stream's index.
static int ka_open_decoder(ka_decoder *d, AVFormatContext *fmt, int *index) {
    ka_audio *out = d->sink.out;
    char text[96];
    *index = -1;
    for (unsigned i = 0; i < fmt->nb_streams; i++) {
        if (*index < 0 && fmt->streams[i]->codecpar->codec_type == AVMEDIA_TYPE_AUDIO) {
            *index = (int)i;
        } else {
            fmt->streams[i]->discard = AVDISCARD_ALL;
        }
    }
    if (*index < 0) {
        return ka_fail(out, KA_NO_AUDIO, "no audio stream in the %s file (%u stream%s)",
                       fmt->iformat->name, fmt->nb_streams, fmt->nb_streams == 1 ? "" : "s");
    }
    AVStream *st = fmt->streams[*index];
    AVCodecParameters *par = st->codecpar;
    snprintf(out->codec, sizeof(out->codec), "%s", avcodec_get_name(par->codec_id));
    // 0 means "not stated": the decoder may still find out from the packets.
    if (par->sample_rate != 0 && !ka_valid_rate(par->sample_rate)) {
        return ka_fail(out, KA_CORRUPT, "the container states a sample rate of %d Hz "
                       "(allowed: 1...%d)", par->sample_rate, KA_MAX_SAMPLE_RATE);
    }
    if (par->ch_layout.nb_channels != 0 && !ka_valid_channels(par->ch_layout.nb_channels)) {
        return ka_fail(out, KA_CORRUPT, "the container states %d channels (allowed: 1...%d)",
                       par->ch_layout.nb_channels, KA_MAX_CHANNELS);
    }
    out->source_rate = par->sample_rate;
    out->channels = par->ch_layout.nb_channels;
    if (par->sample_rate > 0) {
        int64_t estimate = -1;
        if (st->duration != AV_NOPTS_VALUE && st->duration > 0 && st->time_base.num > 0 &&
            st->time_base.den > 0) {
            estimate = av_rescale_q(st->duration, st->time_base, (AVRational){1, par->sample_rate});
        } else if (fmt->duration != AV_NOPTS_VALUE && fmt->duration > 0) {
            estimate = av_rescale(fmt->duration, par->sample_rate, AV_TIME_BASE);
        }
        out->source_frames_estimate = estimate > 0 ? estimate : -1;
    }
    const AVCodec *codec = avcodec_find_decoder(par->codec_id);
    if (codec == NULL) {
        return ka_fail(out, KA_UNSUPPORTED_CODEC, "no decoder for codec %s in this FFmpeg",
                       out->codec);
    }
    d->dec = avcodec_alloc_context3(codec);
    if (d->dec == NULL) return ka_fail(out, KA_OUT_OF_MEMORY, "cannot allocate the decoder");
    int r = avcodec_parameters_to_context(d->dec, par);
    if (r < 0) {
        ka_error_text(r, text, sizeof(text));
        return ka_fail(out, KA_CORRUPT, "bad codec parameters: %s", text);
    }
    d->dec->pkt_timebase = st->time_base;
    d->dec->thread_count = 1;
    d->dec->err_recognition = AV_EF_CRCCHECK;
    if ((r = avcodec_open2(d->dec, codec, NULL)) < 0) {
        ka_error_text(r, text, sizeof(text));
        int bad_data = r == AVERROR_INVALIDDATA || r == AVERROR(EINVAL) || r == AVERROR(ENOMEM);
        return ka_fail(out, bad_data ? KA_CORRUPT : KA_UNSUPPORTED_CODEC,
                       "the %s decoder rejects the stream: %s", out->codec, text);
    }
    return KA_OK;
}

// Fewer frames than the container states (not counting a duration guessed from the bitrate).
// If the last packet's timestamp does not reach the stated end either, the stream was cut short
// (or its last part lost): tolerated like errors at the end. If it does, data was lost before
// the end: an Ogg page with a bad CRC is dropped by the demuxer (in the ffmpeg CLI too), and when
// that happens while the stream parameters are probed nothing else reports it.
static int ka_check_length(ka_decoder *d, AVFormatContext *fmt, AVStream *st, int64_t last_end) {
    ka_audio *out = d->sink.out;
    int stated_rate = st->codecpar->sample_rate;
    if (out->source_frames_estimate > 0 && stated_rate > 0 && out->source_rate > 0 &&
        out->source_rate != stated_rate) {  // e.g. HE-AAC: the decoder doubles the rate
        out->source_frames_estimate = av_rescale(out->source_frames_estimate, out->source_rate,
                                                 stated_rate);
    }
    int64_t stated = out->source_frames_estimate;
    int64_t tolerance = stated / 100 + out->source_rate / 10;
    if (stated <= 0 || d->source_frames <= 0 || d->rate_changed ||
        fmt->duration_estimation_method == AVFMT_DURATION_FROM_BITRATE ||
        stated - d->source_frames <= tolerance) {
        return KA_OK;
    }
    int64_t reached = -1;
    if (last_end != AV_NOPTS_VALUE && st->time_base.num > 0 && st->time_base.den > 0) {
        int64_t start = st->start_time != AV_NOPTS_VALUE ? st->start_time : 0;
        reached = av_rescale_q(last_end - start, st->time_base, (AVRational){1, out->source_rate});
    }
    if (reached >= stated - tolerance) {
        return ka_fail(out, KA_CORRUPT, "data lost in the middle of the stream: its packets reach "
                       "the stated end (%lld frames at %d Hz) but decode to %lld frames%s%s",
                       (long long)stated, out->source_rate, (long long)d->source_frames,
                       d->errors_pending > 0 ? "; " : "", d->errors_pending > 0 ? d->error_text : "");
    }
    char what[120];
    snprintf(what, sizeof(what), "the stream ends after %lld of the %lld frames the container "
             "states", (long long)d->source_frames, (long long)stated);
    ka_note_error(d, what, 0);
    return KA_OK;
}

// Reads every packet of stream `index`, decodes and resamples it, flushes, and judges the errors.
static int ka_decode_packets(ka_decoder *d, AVFormatContext *fmt, int index, AVPacket *pkt) {
    ka_audio *out = d->sink.out;
    int status = KA_OK;
    int demux_error = 0;
    int64_t last_end = AV_NOPTS_VALUE;   // the end timestamp of the stream's last packet
    for (;;) {
        int r = av_read_frame(fmt, pkt);
        if (r < 0) {
            if (r != AVERROR_EOF) demux_error = r;   // the stream ends here, like in FFmpeg
            break;
        }
        if (pkt->stream_index == index) {
            int flagged = pkt->flags & AV_PKT_FLAG_CORRUPT;
            int64_t ts = pkt->pts != AV_NOPTS_VALUE ? pkt->pts : pkt->dts;
            if (ts != AV_NOPTS_VALUE) {
                int64_t end = ts;
                if (pkt->duration > 0 && ts < INT64_MAX - pkt->duration) end += pkt->duration;
                if (last_end == AV_NOPTS_VALUE || end > last_end) last_end = end;
            }
            status = ka_send(d, pkt);
            // Noted after its own frames (a short last packet of a truncated WAV is flagged).
            if (status == KA_OK && flagged) ka_note_error(d, "the demuxer flags a packet corrupt", 0);
        }
        av_packet_unref(pkt);
        if (status != KA_OK) return status;
    }
    if ((status = ka_send(d, NULL)) != KA_OK) return status;
    if ((status = ka_flush(&d->sink)) != KA_OK) return status;
    if (demux_error != 0) ka_note_error(d, "demuxer error", demux_error);
    if ((status = ka_check_length(d, fmt, fmt->streams[index], last_end)) != KA_OK) return status;
    if (d->sink.frames == 0) {
        if (d->errors_pending > 0) {
            return ka_fail(out, KA_CORRUPT, "no packet decodes (%d error%s): %s", d->errors_pending,
                           d->errors_pending == 1 ? "" : "s", d->error_text);
        }
        return ka_fail(out, KA_EMPTY, "the %s stream decodes to no samples", out->codec);
    }
    if (d->errors_pending > 0) {
        out->ignored_errors = d->errors_pending;
        snprintf(out->message, sizeof(out->message), "ignored %d error%s at the end of the stream "
                 "(truncated file?): %s", d->errors_pending, d->errors_pending == 1 ? "" : "s",
                 d->error_text);
    }
    return KA_OK;
}

static int ka_decode(ka_source *src, const char *name_hint, int target_rate, int64_t max_frames,
                     ka_audio *out) {
    ka_init_once();
    char text[96];
    int status = KA_OK;
    int index = -1;
    ka_decoder d;
    memset(&d, 0, sizeof(d));
    d.sink.out = out;
    d.sink.max_frames = max_frames;
    d.target_rate = target_rate;
    AVIOContext *pb = NULL;
    AVFormatContext *fmt = NULL;
    AVPacket *pkt = NULL;

    int r = ka_open_input(src, name_hint, &fmt, &pb);
    if (r == KA_OPEN_NO_MEMORY) return ka_fail(out, KA_OUT_OF_MEMORY, "cannot allocate the demuxer");
    if (r < 0) {
        ka_error_text(r, text, sizeof(text));
        return ka_fail(out, KA_OPEN_FAILED, "not a recognised media file: %s", text);
    }
    snprintf(out->container, sizeof(out->container), "%s", fmt->iformat->name);
    r = avformat_find_stream_info(fmt, NULL);
    if (r < 0) {
        ka_error_text(r, text, sizeof(text));
        status = ka_fail(out, KA_CORRUPT, "cannot read the stream parameters: %s", text);
    }
    if (status == KA_OK) status = ka_open_decoder(&d, fmt, &index);
    if (status == KA_OK) {
        d.frame = av_frame_alloc();
        pkt = av_packet_alloc();
        if (d.frame == NULL || pkt == NULL) status = ka_fail(out, KA_OUT_OF_MEMORY, "cannot allocate frames");
    }
    if (status == KA_OK) {
        ka_logging_decoder = &d;
        status = ka_decode_packets(&d, fmt, index, pkt);
        ka_logging_decoder = NULL;
    }
    ka_sink_finish(&d.sink, status);
    av_packet_free(&pkt);
    av_frame_free(&d.frame);
    avcodec_free_context(&d.dec);
    ka_close_input(&fmt, &pb);
    return status;
}

static int ka_check_decode_arguments(int target_rate, ka_audio *out) {
    if (target_rate != 0 && !ka_valid_rate(target_rate)) {
        return ka_fail(out, KA_BAD_ARGUMENT, "target rate %d Hz (allowed: 0, or 1...%d)",
                       target_rate, KA_MAX_SAMPLE_RATE);
    }
    return KA_OK;
}

int ka_decode_file(const char *path, int target_rate, int64_t max_frames, ka_audio *out) {
    if (out == NULL) return KA_BAD_ARGUMENT;
    ka_reset(out);
    if (path == NULL) return ka_fail(out, KA_BAD_ARGUMENT, "no path");
    int status = ka_check_decode_arguments(target_rate, out);
    if (status != KA_OK) return status;
    ka_init_once();
    char text[96];
    ka_source src;
    memset(&src, 0, sizeof(src));
    src.file = fopen(path, "rb");
    if (src.file == NULL) {
        ka_error_text(AVERROR(errno), text, sizeof(text));
        return ka_fail(out, KA_OPEN_FAILED, "cannot open %s: %s", path, text);
    }
    struct stat info;
    if (fstat(fileno(src.file), &info) != 0) {
        ka_error_text(AVERROR(errno), text, sizeof(text));
        fclose(src.file);
        return ka_fail(out, KA_OPEN_FAILED, "cannot stat %s: %s", path, text);
    }
    if (S_ISDIR(info.st_mode)) {
        fclose(src.file);
        return ka_fail(out, KA_OPEN_FAILED, "%s is a directory", path);
    }
    src.file_size = S_ISREG(info.st_mode) ? (int64_t)info.st_size : -1;
    if (src.file_size == 0) {
        fclose(src.file);
        return ka_fail(out, KA_OPEN_FAILED, "empty file (0 bytes)");
    }
    status = ka_decode(&src, path, target_rate, max_frames, out);
    fclose(src.file);
    return status;
}

int ka_decode_memory(const uint8_t *data, size_t size, int target_rate, int64_t max_frames,
                     ka_audio *out) {
    if (out == NULL) return KA_BAD_ARGUMENT;
    ka_reset(out);
    if (data == NULL && size > 0) return ka_fail(out, KA_BAD_ARGUMENT, "no data");
    int status = ka_check_decode_arguments(target_rate, out);
    if (status != KA_OK) return status;
    if (size == 0) return ka_fail(out, KA_OPEN_FAILED, "empty input (0 bytes)");
    ka_source src;
    memset(&src, 0, sizeof(src));
    src.data = data;
    src.size = size;
    return ka_decode(&src, NULL, target_rate, max_frames, out);
}

// MARK: Resampling float frames

int ka_resample(const float *in, int64_t frames, int channels, int in_rate, int out_rate,
                ka_audio *out) {
    if (out == NULL) return KA_BAD_ARGUMENT;
    ka_reset(out);
    if (frames < 0 || (in == NULL && frames > 0)) {
        return ka_fail(out, KA_BAD_ARGUMENT, "no input or negative frame count");
    }
    if (!ka_valid_channels(channels)) {
        return ka_fail(out, KA_BAD_ARGUMENT, "%d channels (allowed: 1...%d)", channels, KA_MAX_CHANNELS);
    }
    if (!ka_valid_rate(in_rate) || !ka_valid_rate(out_rate)) {
        return ka_fail(out, KA_BAD_ARGUMENT, "rates %d -> %d Hz (allowed: 1...%d)", in_rate,
                       out_rate, KA_MAX_SAMPLE_RATE);
    }
    if ((uint64_t)frames > (uint64_t)(SIZE_MAX / sizeof(float) / (size_t)channels)) {
        return ka_fail(out, KA_BAD_ARGUMENT, "%lld frames cannot be in memory", (long long)frames);
    }
    ka_init_once();
    out->channels = channels;
    out->source_rate = in_rate;
    out->output_rate = out_rate;
    out->source_frames_estimate = frames;
    if (frames == 0) return ka_fail(out, KA_EMPTY, "no input frames");
    size_t count = (size_t)frames * (size_t)channels;
    if (in_rate == out_rate) {
        out->samples = (float *)malloc(count * sizeof(float));
        if (out->samples == NULL) return ka_fail(out, KA_OUT_OF_MEMORY, "cannot allocate %lld frames", (long long)frames);
        memcpy(out->samples, in, count * sizeof(float));
        out->frames = frames;
        return KA_OK;
    }
    ka_sink k;
    memset(&k, 0, sizeof(k));
    k.out = out;
    k.channels = channels;
    k.out_rate = out_rate;
    int64_t expected = av_rescale_rnd(frames, out_rate, in_rate, AV_ROUND_UP);
    int status = expected < 0 || expected == INT64_MIN || expected > INT64_MAX - 1024
        ? ka_fail(out, KA_OUT_OF_MEMORY, "output too large")
        : ka_reserve(&k, expected + 1024);
    if (status == KA_OK) status = ka_swr_open(&k, AV_SAMPLE_FMT_FLT, in_rate);
    const uint8_t *input = (const uint8_t *)in;
    if (status == KA_OK) status = ka_convert(&k, &input, frames);
    if (status == KA_OK) status = ka_flush(&k);
    if (status == KA_OK && k.frames == 0) status = ka_fail(out, KA_EMPTY, "resampled to no frames");
    ka_sink_finish(&k, status);
    return status;
}

#endif
